import { Args, Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { mirrorProgress, progressFlag, resolveMode } from '../src/cli/progress.js';
import { connectionsFlag, registryClient, registryFlags } from '../src/cli/registry-flags.js';
import { storePlatformFlag } from '../src/cli/store-flags.js';
import { resultJson } from '../src/mirror/result.js';
import { copyFromStore, storeImages } from '../src/save/index.js';
import { formatBytes, shortDigest } from '../src/util/present.js';

export default class Push extends SkiffCommand {
  static override summary = 'Push a stored image to a registry, its layers rebuilt and verified on the way.';
  static override description =
    `Copies a stored image (STORE-REF: a name or digest in the store) to DEST, docker://HOST/REPO[:TAG]: the config exactly as pulled, each layer as the uncompressed tar it was (application/vnd.oci.image.layer.v1.tar, digest = DiffID), rebuilt from the store and proven against its DiffID as it streams, under a manifest naming them. Blobs the registry has are not sent again, and a re-run of a completed push transfers nothing.

The store keeps unpacked contents, not the compressed blobs it pulled, so the pushed manifest's digest differs from the original's unless its layers were uncompressed already; the config digest (image ID) and the DiffIDs are the original's. To copy an image with its digests from registry to registry, use skiff mirror.

Exit codes: 0 success, 1 usage, 2 not in the store, or the registry refused access, 4 a layer does not rebuild to its DiffID, 5 network failure.`;

  static override examples = [
    '<%= config.bin %> push alpine docker://127.0.0.1:5000/library/alpine:3.20',
    '<%= config.bin %> push --all quay.io/org/app:1.2 docker://registry.example/org/app:1.2 --creds me',
  ];

  static override args = {
    ref: Args.string({ description: 'image name or digest in the store', required: true }),
    destination: Args.string({ description: 'docker://HOST/REPO[:TAG]', required: true }),
  };

  static override flags = {
    ...registryFlags,
    platform: storePlatformFlag,
    all: Flags.boolean({
      description: 'every platform the name was pulled for, as an index',
      default: false,
    }),
    'blob-jobs': Flags.integer({ description: 'blobs copied in parallel', default: 4, min: 1, max: 32 }),
    connections: connectionsFlag,
    'chunk-size': Flags.integer({
      description: 'upload blobs in chunks of this many MiB (0: one request per blob)',
      default: 0,
      min: 0,
    }),
    progress: progressFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Push);
    const store = await this.openExistingStore(flags.store);
    const images = await storeImages(store, args.ref, flags);
    const progress = mirrorProgress(resolveMode(flags.progress, { json: flags.json }));
    const client = await registryClient(flags, flags.connections, (line) =>
      progress.write(process.stderr, `${line}\n`),
    );
    try {
      const result = await copyFromStore('push', store, args.ref, images, args.destination, {
        client,
        all: flags.all,
        blobJobs: flags['blob-jobs'],
        chunkSize: flags['chunk-size'] * 1024 * 1024,
        progress,
      });
      progress.stop();
      if (flags.json) {
        this.printJson({ ...resultJson(result), configDigest: images[0]!.configDigest });
        return;
      }
      const what = result.upToDate
        ? 'up to date (no blob transferred)'
        : `${result.blobsCopied} blobs copied, ${result.blobsSkipped} skipped, ${formatBytes(result.bytes)}`;
      process.stdout.write(
        `pushed ${args.ref} to ${result.destination} ${shortDigest(result.manifestDigest!)} (${what})\n${result.notes.map((n) => `  note: ${n}\n`).join('')}`,
      );
    } finally {
      progress.stop();
      await client.close();
    }
  }
}
