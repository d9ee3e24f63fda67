import { Args } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { storePlatformFlag } from '../src/cli/store-flags.js';
import { findImage } from '../src/images/index.js';
import { saveImage } from '../src/save/index.js';

export default class Save extends SkiffCommand {
  static override summary =
    'Write a stored image out, its layers rebuilt byte for byte and verified against their DiffIDs.';
  static override description =
    `Writes an OCI layout: the config exactly as pulled, each layer as an uncompressed tar (media type application/vnd.oci.image.layer.v1.tar) whose digest is its DiffID, and a new OCI manifest naming them.

The manifest digest therefore differs from the source's whenever the source's layers were compressed (as registry images nearly always are): the store keeps unpacked file contents, not the compressed blobs, and recompressing could not reproduce the publisher's bytes, while an uncompressed layer is proven exactly against the DiffID the config commits to. The config digest (the image ID) is the source's. To copy an image with its digests, use skiff mirror.`;

  static override args = {
    ref: Args.string({ description: 'image name or digest in the store', required: true }),
    destination: Args.string({ description: 'oci:DIR[:TAG]', required: true }),
  };

  static override flags = { platform: storePlatformFlag };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Save);
    const store = await this.openExistingStore(flags.store);
    const image = await findImage(store, args.ref, flags.platform);
    const result = await saveImage(store, image, args.destination);
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `saved ${image.configDigest} to ${result.destination} (manifest ${result.manifestDigest}, ${result.layersWritten} layer(s) written, ${result.layersPresent} already there)\n`,
      );
  }
}
