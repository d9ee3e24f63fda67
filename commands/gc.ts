import { Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { collectGarbage } from '../src/store/index.js';
import { formatBytes } from '../src/util/present.js';
import { parseAge } from '../src/util/quantities.js';

export default class Gc extends SkiffCommand {
  static override summary =
    'Remove images no name refers to, layers and objects no image references, and staging leftovers.';

  static override flags = {
    'resume-max-age': Flags.string({
      description:
        'remove what interrupted pulls kept for resuming once it is older than this (e.g. 7d, 12h, 30m, 0)',
      default: '7d',
    }),
    all: Flags.boolean({ description: 'remove all resumable state, whatever its age', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Gc);
    const resumeMaxAgeMs = flags.all ? 0 : parseAge(flags['resume-max-age'], '--resume-max-age');
    const store = await this.openExistingStore(flags.store);
    const result = await collectGarbage(store, { resumeMaxAgeMs });
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `removed ${result.imagesRemoved} unnamed image(s), ${result.layersRemoved} layer(s), ${result.objectsRemoved} object(s), ${result.packsRewritten} pack(s) rewritten, ${result.stagingRemoved} staging dir(s), resumable state of ${result.resumeRemoved} blob(s); freed ${formatBytes(result.bytesFreed)}\n`,
      );
  }
}
