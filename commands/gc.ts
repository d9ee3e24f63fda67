import { SkiffCommand } from '../src/cli/base.js';
import { formatBytes } from '../src/pull/report.js';
import { collectGarbage } from '../src/store/gc.js';

export default class Gc extends SkiffCommand {
  static override summary = 'Remove layers, objects and staging leftovers that no image references.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Gc);
    const store = await this.openExistingStore(flags.store);
    const result = await collectGarbage(store);
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `removed ${result.layersRemoved} layer(s), ${result.objectsRemoved} object(s), ${result.packsRewritten} pack(s) rewritten, ${result.stagingRemoved} staging dir(s); freed ${formatBytes(result.bytesFreed)}\n`,
      );
  }
}
