/**
 * The store as an image source (`store:`): what `save`, `push` and `mirror store:…` copy from.
 *
 * The store keeps each image's config byte for byte, the manifests it was pulled through, and every
 * layer as tar-split + content objects, but not the compressed blobs: a layer leaves the store as
 * the uncompressed tar it was, rebuilt byte for byte and hashed against its DiffID as it streams.
 * So the manifest served is:
 * - the stored manifest exactly, when its layers were uncompressed tars already (each layer's digest
 *   is its DiffID): digests are preserved;
 * - otherwise a new OCI manifest naming the config and the layers as uncompressed tars by DiffID
 *   (the same bytes `save` has always written, so its digest is stable from run to run).
 * A name pulled for several platforms is served as an OCI index of them, so --platform and --all
 * choose as they do from a registry. Ranges are not served: a layer exists only as it is rebuilt.
 */
import { pipeline, type Readable, Readable as ReadableStream } from 'node:stream';
import { type Digest, DigestStream, sha256 } from '../digest/index.js';
import { NotFoundError } from '../errors/index.js';
import { type FoundImage, findImage, findImagesByName, namesDigest } from '../images/index.js';
import { MediaType } from '../manifest/index.js';
import { type ByteRange, type RangeConsumer, RangesNotHonouredError } from '../ranges/index.js';
import type { StoreReference } from '../reference/index.js';
import { defaultStorePath, openExistingStore, rebuildLayerTar, type Store } from '../store/index.js';
import type { BlobRef, ImageSource, RawManifest } from './source.js';

/** What a resolved reference serves: its top manifest, every manifest by digest, and its blobs. */
interface Served {
  top: RawManifest & { digest: Digest };
  manifests: Map<Digest, RawManifest>;
  configs: Map<Digest, Buffer>;
  /** DiffID → tar size of every layer of the images served. */
  layers: Map<Digest, number>;
}

export class StoreSource implements ImageSource {
  readonly rangeSupport = 'no' as const;
  private served: Promise<{ store: Store; served: Served }> | undefined;

  constructor(readonly reference: StoreReference) {}

  async getManifest(): Promise<RawManifest> {
    const { top } = (await this.resolve()).served;
    return { bytes: top.bytes, contentType: top.contentType };
  }

  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    const manifest = (await this.resolve()).served.manifests.get(digest);
    if (!manifest)
      throw new NotFoundError(`manifest ${digest} is not part of ${this.text}`, { digest, image: this.text });
    return manifest;
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    const { served } = await this.resolve();
    return served.configs.get(digest)?.length ?? served.layers.get(digest);
  }

  async openBlob(blob: BlobRef): Promise<Readable> {
    const { store, served } = await this.resolve();
    const config = served.configs.get(blob.digest);
    if (config) return ReadableStream.from([config]);
    const size = served.layers.get(blob.digest);
    if (size === undefined)
      throw new NotFoundError(`blob ${blob.digest} is not part of ${this.text}`, {
        digest: blob.digest,
        image: this.text,
      });
    // The rebuild is proven as it streams: the last chunk is held back until the hash matched.
    const verify = new DigestStream({
      digest: blob.digest,
      size,
      what: `stored layer ${blob.digest} (rebuilt from the store)`,
    });
    return pipeline(ReadableStream.from(rebuildLayerTar(store, blob.digest)), verify, () => {});
  }

  async fetchRanges(blob: BlobRef, _ranges: readonly ByteRange[], _onRange: RangeConsumer): Promise<void> {
    throw new RangesNotHonouredError(
      'ignored',
      `${this.text}: layer ${blob.digest} is rebuilt from the store as a whole, not read by ranges`,
    );
  }

  async close(): Promise<void> {}

  private get text(): string {
    return `store:${this.reference.image}`;
  }

  private resolve(): Promise<{ store: Store; served: Served }> {
    this.served ??= (async () => {
      const store = await openExistingStore(this.reference.root ?? defaultStorePath());
      return { store, served: await serve(store, this.reference.image) };
    })();
    return this.served;
  }
}

async function serve(store: Store, text: string): Promise<Served> {
  const byName = namesDigest(text) ? [] : await findImagesByName(store, text);
  const images = byName.length > 0 ? byName : [await findImage(store, text)];
  const served: Served = {
    top: undefined as unknown as Served['top'],
    manifests: new Map(),
    configs: new Map(),
    layers: new Map(),
  };
  const entries = [];
  for (const image of images) {
    const manifest = await imageManifest(store, image);
    served.manifests.set(manifest.digest, manifest);
    served.configs.set(image.configDigest, await store.readImageConfig(image.configDigest));
    for (const diffID of image.record.diffIDs)
      served.layers.set(diffID, (await store.readLayer(diffID)).tarSize);
    entries.push({ manifest, platform: image.record.platform });
  }
  if (entries.length === 1) {
    served.top = entries[0]!.manifest;
    return served;
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: entries.map(({ manifest, platform }) => ({
        mediaType: manifest.contentType,
        digest: manifest.digest,
        size: manifest.bytes.length,
        platform,
      })),
    }),
  );
  served.top = { bytes: index, contentType: MediaType.ociIndex, digest: sha256(index) };
  served.manifests.set(served.top.digest, served.top);
  return served;
}

const PLAIN_MANIFESTS: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];

/** The stored manifest where its layers are the stored tars; else one naming them (see the top). */
async function imageManifest(store: Store, image: FoundImage): Promise<RawManifest & { digest: Digest }> {
  const stored = await store.readImageManifests(image.configDigest);
  const preferred = stored.find((m) => m.record.digest === image.name?.manifestDigest) ?? stored[0];
  const verbatim =
    preferred &&
    PLAIN_MANIFESTS.includes(preferred.record.mediaType) &&
    preferred.record.layers.length === image.record.diffIDs.length &&
    preferred.record.layers.every((l, i) => l.digest === l.diffID && l.diffID === image.record.diffIDs[i]);
  if (verbatim)
    return {
      bytes: preferred.bytes,
      contentType: preferred.record.mediaType,
      digest: preferred.record.digest,
    };
  const config = await store.readImageConfig(image.configDigest);
  const layers = [];
  for (const diffID of image.record.diffIDs)
    layers.push({
      mediaType: MediaType.ociLayer,
      digest: diffID,
      size: (await store.readLayer(diffID)).tarSize,
    });
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: image.configDigest, size: config.length },
      layers,
    }),
  );
  return { bytes, contentType: MediaType.ociManifest, digest: sha256(bytes) };
}
