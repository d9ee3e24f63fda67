import { Args } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { storePlatformFlag } from '../src/cli/store-flags.js';
import { removeImage } from '../src/images/index.js';

export default class Rmi extends SkiffCommand {
  static override summary =
    'Remove images (by name: that name; by digest: the image and all its names). Layers go at the next gc.';
  static override strict = false;

  static override args = {
    ref: Args.string({ description: 'image name or digest (repeatable)', required: true }),
  };

  static override flags = { platform: storePlatformFlag };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Rmi);
    const store = await this.openExistingStore(flags.store);
    const results = [];
    for (const ref of argv as string[]) {
      const result = await removeImage(store, ref, flags.platform);
      results.push({ ref, ...result });
      if (!flags.json) {
        for (const { name, platform } of result.untagged)
          process.stdout.write(`untagged ${name} (${platform})\n`);
        for (const digest of result.deleted) process.stdout.write(`deleted ${digest}\n`);
      }
    }
    if (flags.json) this.printJson(results);
  }
}
