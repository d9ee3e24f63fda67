import { Args, Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { registryClient } from '../src/cli/registry-flags.js';
import { storePlatformFlag } from '../src/cli/store-flags.js';
import { resultJson } from '../src/mirror/result.js';
import { configsAt, copyFromStore, saveSummary, storeImages } from '../src/save/index.js';

export default class Save extends SkiffCommand {
  static override summary =
    'Write a stored image out, its layers rebuilt byte for byte and verified against their DiffIDs.';
  static override description =
    `Copies a stored image to oci:DIR[:TAG], dir:DIR or docker-archive:FILE[:NAME:TAG] (the store as the source of a copy: store:REF). It writes the config exactly as pulled, and each layer as an uncompressed tar (media type application/vnd.oci.image.layer.v1.tar) whose digest is its DiffID, rebuilt from the store and proven against the DiffID as it streams.

The manifest digest therefore differs from the source's whenever the source's layers were compressed (as registry images nearly always are): the store keeps unpacked file contents, not the compressed blobs, and recompressing could not reproduce the publisher's bytes, while an uncompressed layer is proven exactly against the DiffID the config commits to. The config digest (the image ID) is the source's. An image whose layers were uncompressed tars already keeps its manifest digest. To copy an image with its digests, use skiff mirror; to send a stored image to a registry, skiff push.

Exit codes: 0 success, 1 usage, 2 not in the store, 4 a layer does not rebuild to its DiffID (store damaged).`;

  static override examples = [
    '<%= config.bin %> save alpine oci:./alpine:3.20',
    '<%= config.bin %> save --all quay.io/org/app:1.2 oci:./app',
    '<%= config.bin %> save alpine docker-archive:./alpine.tar',
  ];

  static override args = {
    ref: Args.string({ description: 'image name or digest in the store', required: true }),
    destination: Args.string({
      description: 'oci:DIR[:TAG], dir:DIR or docker-archive:FILE[:NAME:TAG]',
      required: true,
    }),
  };

  static override flags = {
    platform: storePlatformFlag,
    all: Flags.boolean({
      description: 'every platform the name was pulled for, as an index',
      default: false,
    }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Save);
    const store = await this.openExistingStore(flags.store);
    const images = await storeImages(store, args.ref, flags);
    // Local destinations only: the client is never used to reach a registry.
    const client = await registryClient({
      insecure: false,
      'retry-times': 0,
      'retry-delay': 0,
      'retry-delay-max': '60s',
      'stall-timeout': 60,
    });
    try {
      const present = await configsAt(args.destination, images, { client });
      const result = await copyFromStore('save', store, args.ref, images, args.destination, {
        client,
        all: flags.all,
      });
      const summary = await saveSummary(store, images, result, present);
      if (flags.json) this.printJson({ ...resultJson(result), ...summary });
      else
        process.stdout.write(
          `saved ${summary.configDigest} to ${result.destination} (manifest ${result.manifestDigest}, ${summary.layersWritten} layer(s) written, ${summary.layersPresent} already there)\n`,
        );
    } finally {
      await client.close();
    }
  }
}
