import { SkiffCommand } from '../src/cli/base.js';
import { ExitCode } from '../src/errors/index.js';
import { checkStore, formatDamage } from '../src/store/index.js';

export default class Fsck extends SkiffCommand {
  static override summary =
    'Check the whole store: every layer rebuilt and proven against its DiffID, every image, name and object. Exit 4 on any damage.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Fsck);
    // Checking never creates: a mistyped --store is an error, not an empty, healthy store.
    const store = await this.openExistingStore(flags.store);
    const result = await checkStore(store);
    if (flags.json) this.printJson(result);
    else {
      for (const damage of result.damage) process.stdout.write(`${formatDamage(damage)}\n`);
      process.stdout.write(
        `checked ${result.names} name(s), ${result.images} image(s), ${result.layers} layer(s), ${result.objects} object(s) in ${result.packs} pack(s) and loose: ${result.clean ? 'no damage' : `${result.damage.length} damaged`}\n`,
      );
    }
    if (!result.clean) {
      process.stderr.write(`skiff: store ${store.root} is damaged: ${result.damage.length} problem(s)\n`);
      this.exit(ExitCode.verification);
    }
  }
}
