import { SkiffCommand } from '../src/cli/base.js';
import { table } from '../src/cli/table.js';
import { listImages } from '../src/images/index.js';
import { formatBytes, shortDigest } from '../src/util/present.js';

export default class Images extends SkiffCommand {
  static override summary = 'List the images in the store.';
  static override description =
    "One row per name and platform. SIZE is compressed, as the registry stores the layers (the same quantity as pull's and inspect's SIZE; JSON `size`); UNPACKED is the layers' tar size (JSON `unpackedSize`).";

  async run(): Promise<void> {
    const { flags } = await this.parse(Images);
    const store = await this.openExistingStore(flags.store);
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
        formatBytes(image.unpackedSize),
        image.diffIDsComputed ? 'computed' : 'publisher',
      ]),
    );
    process.stdout.write(
      `${table(['NAME', 'IMAGE', 'PLATFORM', 'LAYERS', 'SIZE', 'UNPACKED', 'DIFFIDS'], rows)}\n`,
    );
  }
}
