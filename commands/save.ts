import { Args } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { findImage } from '../src/images/index.js';
import { saveImage } from '../src/save/index.js';

export default class Save extends SkiffCommand {
  static override summary =
    'Write a stored image out, its layers rebuilt byte for byte and verified against their DiffIDs.';

  static override args = {
    ref: Args.string({ description: 'image name or digest in the store', required: true }),
    destination: Args.string({ description: 'oci:DIR[:TAG]', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Save);
    const store = await this.openStore(flags.store);
    const image = await findImage(store, args.ref);
    const result = await saveImage(store, image, args.destination);
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `saved ${image.configDigest} to ${result.destination} (manifest ${result.manifestDigest}, ${result.layersWritten} layer(s) written, ${result.layersPresent} already there)\n`,
      );
  }
}
