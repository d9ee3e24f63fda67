import { Args } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { storePlatformFlag } from '../src/cli/store-flags.js';
import { findImage } from '../src/images/index.js';
import { unpack } from '../src/unpack/index.js';

const MAX_WARNINGS = 10;

export default class Unpack extends SkiffCommand {
  static override summary = "Materialise an image's root filesystem into an empty directory.";

  static override args = {
    ref: Args.string({ description: 'image name or digest in the store', required: true }),
    dir: Args.string({ description: 'target directory (new or empty)', required: true }),
  };

  static override flags = { platform: storePlatformFlag };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Unpack);
    const store = await this.openExistingStore(flags.store);
    const image = await findImage(store, args.ref, flags.platform);
    const result = await unpack(store, image.record.diffIDs, args.dir);
    if (flags.json) {
      this.printJson({ image: image.configDigest, ...result });
      return;
    }
    // A few lines say what was not applied and why; --json lists every one.
    for (const s of result.skipped.slice(0, MAX_WARNINGS))
      process.stderr.write(`skiff: warning: ${s.path}: ${s.what} not applied (${s.why})\n`);
    if (result.skipped.length > MAX_WARNINGS)
      process.stderr.write(
        `skiff: warning: and ${result.skipped.length - MAX_WARNINGS} more not applied (--json lists them)\n`,
      );
    process.stdout.write(
      `unpacked ${result.entries} entries of ${result.layers} layer(s) into ${result.target}\n`,
    );
  }
}
