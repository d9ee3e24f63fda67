import { SkiffCommand } from '../src/cli/base.js';
import { table } from '../src/cli/table.js';
import { shortDigest } from '../src/errors/index.js';
import { listImages } from '../src/images/index.js';
import { formatBytes } from '../src/pull/report.js';

export default class Images extends SkiffCommand {
  static override summary = 'List the images in the store.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Images);
    const store = await this.openStore(flags.store);
    const images = await listImages(store);
    if (flags.json) {
      this.printJson(images);
      return;
    }
    const rows = images.flatMap((image) =>
      (image.names.length ? image.names : ['<none>']).map((name) => [
        name,
        shortDigest(image.configDigest),
        image.platform,
        String(image.layers),
        formatBytes(image.size),
        image.diffIDsComputed ? 'computed' : 'publisher',
      ]),
    );
    process.stdout.write(`${table(['NAME', 'IMAGE', 'PLATFORM', 'LAYERS', 'SIZE', 'DIFFIDS'], rows)}\n`);
  }
}
