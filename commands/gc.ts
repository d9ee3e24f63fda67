import { SkiffCommand } from '../src/cli/base.js';
import { formatBytes } from '../src/pull/report.js';
import { collectGarbage } from '../src/store/gc.js';

export default class Gc extends SkiffCommand {
  static override summary =
    'Remove images no name refers to, layers and objects no image references, and staging leftovers.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Gc);
    const store = await this.openStore(flags.store);
    const result = await collectGarbage(store);
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `removed ${result.imagesRemoved} unnamed image(s), ${result.layersRemoved} layer(s), ${result.objectsRemoved} object(s), ${result.packsRewritten} pack(s) rewritten, ${result.stagingRemoved} staging dir(s); freed ${formatBytes(result.bytesFreed)}\n`,
      );
  }
}
