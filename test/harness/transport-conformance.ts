/**
 * One conformance suite for every transport (issue 12), after go-containerregistry's
 * pkg/v1/validate and oras-go's memory store: whatever a transport is, a source serves manifests,
 * configs and blobs exactly (digests preserved where its format allows, ranges exactly where it
 * serves them), and a destination refuses bad digests and shows nothing of a copy it did not
 * commit.
 *
 * A transport plugs in with `describeTransportConformance(name, factory)`: the factory says how to
 * seed a source with a test image (or index) and how to get a fresh destination and read it back.
 * The seed is written as an OCI layout (writeSeedLayout) so that a factory can fill its transport
 * with a tool other than the code under test (skopeo, `skiff pull`).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import type { ImageDestination, ImageSource } from '../../src/transport/index.js';
import { makeTar } from './tar-writer.js';

const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface TestBlob {
  digest: Digest;
  bytes: Buffer;
  mediaType: string;
}

export interface TestDocument {
  digest: Digest;
  bytes: Buffer;
  mediaType: string;
}

export interface TestImage {
  platform: { os: string; architecture: string };
  config: TestBlob;
  /** Uncompressed tars, so that every transport (docker-archive, the store) can keep their digests. */
  layers: TestBlob[];
  manifest: TestDocument;
}

export interface TestIndex {
  index: TestDocument;
  images: TestImage[];
}

export type Seed = { kind: 'image'; image: TestImage } | { kind: 'index'; index: TestIndex };

/** A small image with two layers, different for each `name` (so parallel tests never share blobs). */
export function makeTestImage(name: string, architecture = 'amd64'): TestImage {
  const layerTars = [0, 1].map((i) =>
    makeTar([
      { name: `layer${i}/`, type: 'dir' },
      // Big enough that ranges inside it mean something; random so no other test holds the blob.
      { name: `layer${i}/${name}.bin`, content: Buffer.concat([randomBytes(20_000), Buffer.from(name)]) },
      { name: `layer${i}/link`, type: 'symlink', linkname: `${name}.bin` },
    ]),
  );
  const layers = layerTars.map((bytes) => ({
    digest: sha(bytes),
    bytes,
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
  }));
  const platform = { os: 'linux', architecture };
  const configBytes = Buffer.from(
    JSON.stringify({
      ...platform,
      config: { Labels: { 'test.name': name } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      history: [],
    }),
  );
  const config = {
    digest: sha(configBytes),
    bytes: configBytes,
    mediaType: 'application/vnd.oci.image.config.v1+json',
  };
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: config.mediaType, digest: config.digest, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
    }),
  );
  return {
    platform,
    config,
    layers,
    manifest: { digest: sha(manifestBytes), bytes: manifestBytes, mediaType: OCI_MANIFEST },
  };
}

/** An index of two images, for amd64 and arm64. */
export function makeTestIndex(name: string): TestIndex {
  const images = ['amd64', 'arm64'].map((arch) => makeTestImage(`${name}-${arch}`, arch));
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map((image) => ({
        mediaType: image.manifest.mediaType,
        digest: image.manifest.digest,
        size: image.manifest.bytes.length,
        platform: image.platform,
      })),
    }),
  );
  return { index: { digest: sha(bytes), bytes, mediaType: OCI_INDEX }, images };
}

/** Writes the seed as an OCI layout at `dir`, tagged `tag`: what factories fill their transport from. */
export function writeSeedLayout(dir: string, seed: Seed, tag = 'latest'): void {
  fs.mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  const put = (blob: { digest: Digest; bytes: Buffer }) =>
    fs.writeFileSync(path.join(dir, 'blobs/sha256', blob.digest.slice(7)), blob.bytes);
  const images = seed.kind === 'image' ? [seed.image] : seed.index.images;
  for (const image of images) {
    put(image.config);
    image.layers.forEach(put);
    put(image.manifest);
  }
  const top = seed.kind === 'image' ? seed.image.manifest : seed.index.index;
  put(top);
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: top.mediaType,
          digest: top.digest,
          size: top.bytes.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}

export interface SourceFactory {
  /** Fills the transport with `seed` and opens a source on it. */
  open(seed: Seed): Promise<ImageSource>;
  /** Whether the top manifest keeps its bytes (else it is rebuilt, e.g. a docker archive's). */
  manifests: 'preserved' | 'rebuilt';
  /** How an index survives; absent where the transport holds single images only. */
  indexes?: 'preserved' | 'rebuilt';
}

export interface FreshDestination {
  destination: ImageDestination;
  /** A source on what the destination holds now (after a commit, or to see that nothing is there). */
  readBack(): ImageSource | Promise<ImageSource>;
  /** Another destination on the same reference: a later copy to the same place. */
  again(): ImageDestination | Promise<ImageDestination>;
}

export interface DestinationFactory {
  /** A destination nobody has written to. */
  fresh(): Promise<FreshDestination>;
  manifests: 'preserved' | 'rebuilt';
  /**
   * 'commit': nothing is visible before commit() (docker-archive writes its file then). 'manifest':
   * putManifest('top') is the moment the image becomes visible (registries, layouts), so an
   * aborted copy, which never writes its top manifest, leaves nothing visible.
   */
  visibleAt: 'commit' | 'manifest';
}

export interface TransportUnderTest {
  source?: SourceFactory | undefined;
  destination?: DestinationFactory | undefined;
  /** Runs after the suite (stops servers, removes directories). */
  cleanup?: () => Promise<void> | void;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const blobRef = (blob: TestBlob) => ({
  digest: blob.digest,
  size: blob.bytes.length,
  mediaType: blob.mediaType,
});

let unique = 0;
/** A name no other test of this run uses. */
export const uniqueName = (prefix: string) => `${prefix}${process.pid}x${++unique}`;

export function describeTransportConformance(name: string, factory: () => TransportUnderTest): void {
  describe(`${name}: transport conformance`, () => {
    const transport = factory();
    afterAll(async () => {
      await transport.cleanup?.();
    });
    if (transport.source) describeSource(transport.source);
    if (transport.destination) describeDestination(transport.destination);
  });
}

function describeSource(factory: SourceFactory): void {
  describe('as a source', () => {
    it('serves the manifest (its digest kept where the format allows) and finds it by digest', async () => {
      const image = makeTestImage(uniqueName('src-manifest'));
      const source = await factory.open({ kind: 'image', image });
      try {
        const raw = await source.getManifest();
        const doc = JSON.parse(raw.bytes.toString());
        if (factory.manifests === 'preserved') expect(raw.bytes.equals(image.manifest.bytes)).toBe(true);
        expect(doc.config.digest).toBe(image.config.digest);
        expect(doc.layers.map((l: { digest: string }) => l.digest)).toEqual(
          image.layers.map((l) => l.digest),
        );
        const byDigest = await source.getManifestByDigest(sha(raw.bytes));
        expect(byDigest.bytes.equals(raw.bytes)).toBe(true);
      } finally {
        await source.close();
      }
    });

    it('serves the config and every layer byte for byte, with their sizes', async () => {
      const image = makeTestImage(uniqueName('src-blobs'));
      const source = await factory.open({ kind: 'image', image });
      try {
        for (const blob of [image.config, ...image.layers]) {
          expect((await readAll(await source.openBlob(blobRef(blob)))).equals(blob.bytes)).toBe(true);
          expect(await source.blobSize(blob.digest)).toBe(blob.bytes.length);
        }
      } finally {
        await source.close();
      }
    });

    it('refuses a blob and a manifest it does not hold', async () => {
      const image = makeTestImage(uniqueName('src-missing'));
      const source = await factory.open({ kind: 'image', image });
      const absent = sha(randomBytes(32));
      try {
        await expect(source.getManifestByDigest(absent)).rejects.toThrow();
        await expect(
          source.openBlob({ digest: absent, size: 10 }).then((stream) => readAll(stream)),
        ).rejects.toThrow();
        expect(await source.blobSize(absent).catch(() => undefined)).toBeUndefined();
      } finally {
        await source.close();
      }
    });

    it('returns exactly the bytes of each range asked for, in order, or refuses where it serves none', async () => {
      const image = makeTestImage(uniqueName('src-ranges'));
      const layer = image.layers[1]!;
      const source = await factory.open({ kind: 'image', image });
      const ranges = [
        { start: 0, end: 1 },
        { start: 700, end: 5000 },
        { start: 5000, end: 5001 },
        { start: layer.bytes.length - 9, end: layer.bytes.length },
      ];
      try {
        const got: Array<{ start: number; end: number; data: Buffer }> = [];
        const fetching = source.fetchRanges(blobRef(layer), ranges, async (range, data) => {
          got.push({ ...range, data: await readAll(data) });
        });
        if (source.rangeSupport === 'no') {
          await expect(fetching).rejects.toThrow();
          return;
        }
        await fetching;
        expect(got.map(({ start, end }) => ({ start, end }))).toEqual(ranges);
        for (const part of got)
          expect(part.data.equals(layer.bytes.subarray(part.start, part.end))).toBe(true);
      } finally {
        await source.close();
      }
    });

    it('refuses a range beyond the end of the blob (where it serves ranges)', async () => {
      const image = makeTestImage(uniqueName('src-range-end'));
      const layer = image.layers[0]!;
      const source = await factory.open({ kind: 'image', image });
      try {
        const beyond = [{ start: layer.bytes.length - 4, end: layer.bytes.length + 4 }];
        const parts: Buffer[] = [];
        const fetching = source.fetchRanges(blobRef(layer), beyond, async (_range, data) => {
          parts.push(await readAll(data));
        });
        // Handing out 4 bytes for an 8-byte range would pass a short read off as the range.
        await expect(fetching).rejects.toThrow();
        expect(parts.every((part) => part.length !== 8)).toBe(true);
      } finally {
        await source.close();
      }
    });

    if (factory.indexes) {
      const kept = factory.indexes;
      it(`serves an index (${kept}) and each of its images by digest, their platforms named`, async () => {
        const index = makeTestIndex(uniqueName('src-index'));
        const source = await factory.open({ kind: 'index', index });
        try {
          const raw = await source.getManifest();
          if (kept === 'preserved') expect(raw.bytes.equals(index.index.bytes)).toBe(true);
          const doc = JSON.parse(raw.bytes.toString());
          const entries = doc.manifests as Array<{ digest: Digest; platform: { architecture: string } }>;
          expect(entries.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
          for (const image of index.images) {
            const entry = entries.find((m) => m.platform.architecture === image.platform.architecture)!;
            const child = await source.getManifestByDigest(entry.digest);
            expect(sha(child.bytes)).toBe(entry.digest);
            expect(JSON.parse(child.bytes.toString()).config.digest).toBe(image.config.digest);
          }
        } finally {
          await source.close();
        }
      });
    }
  });
}

async function writeImage(destination: ImageDestination, image: TestImage, role: 'child' | 'top') {
  for (const blob of [...image.layers, image.config])
    if (!(await destination.hasBlob(blob.digest, blob.bytes.length)))
      await destination.putBlob(
        { digest: blob.digest, size: blob.bytes.length },
        ReadableStream.from([blob.bytes]),
      );
  await destination.putManifest(image.manifest, role);
}

/** Whether a source on the destination shows an image: its manifest reads. */
async function visible(fresh: FreshDestination): Promise<boolean> {
  const source = await fresh.readBack();
  try {
    await source.getManifest();
    return true;
  } catch {
    return false;
  } finally {
    await source.close().catch(() => undefined);
  }
}

function describeDestination(factory: DestinationFactory): void {
  describe('as a destination', () => {
    it('keeps what a copy wrote: manifest, config and layers read back exactly', async () => {
      const image = makeTestImage(uniqueName('dst-roundtrip'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      expect(await destination.existingManifest()).toBeUndefined();
      await writeImage(destination, image, 'top');
      for (const blob of [image.config, ...image.layers])
        expect(await destination.hasBlob(blob.digest, blob.bytes.length)).toBe(true);
      await destination.commit();
      await destination.close();
      const source = await fresh.readBack();
      try {
        const raw = await source.getManifest();
        if (factory.manifests === 'preserved') expect(raw.bytes.equals(image.manifest.bytes)).toBe(true);
        expect(JSON.parse(raw.bytes.toString()).config.digest).toBe(image.config.digest);
        for (const blob of [image.config, ...image.layers])
          expect((await readAll(await source.openBlob(blobRef(blob)))).equals(blob.bytes)).toBe(true);
      } finally {
        await source.close();
      }
    });

    it('refuses a blob whose content does not match its digest, and keeps nothing of it', async () => {
      const image = makeTestImage(uniqueName('dst-bad'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      const [good, other] = image.layers as [TestBlob, TestBlob];
      try {
        await expect(
          destination.putBlob(
            { digest: good.digest, size: good.bytes.length },
            ReadableStream.from([other.bytes]),
          ),
        ).rejects.toThrow();
        // The size matches, only the bytes differ: the digest alone must catch it.
        const tampered = Buffer.from(good.bytes);
        tampered[tampered.length - 1024 - 1]! ^= 1;
        await expect(
          destination.putBlob(
            { digest: good.digest, size: good.bytes.length },
            ReadableStream.from([tampered]),
          ),
        ).rejects.toThrow();
        expect(await destination.hasBlob(good.digest)).toBe(false);
        expect(await destination.hasBlob(good.digest, good.bytes.length)).toBe(false);
      } finally {
        await destination.close();
      }
      expect(await visible(fresh)).toBe(false);
    });

    it('keeps nothing of a blob whose stream failed part way, and answers hasBlob by size too', async () => {
      const image = makeTestImage(uniqueName('dst-broken-stream'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      const [layer, other] = image.layers as [TestBlob, TestBlob];
      try {
        async function* failing() {
          yield layer.bytes.subarray(0, 4096);
          throw new Error('the source went away');
        }
        await expect(
          destination.putBlob(
            { digest: layer.digest, size: layer.bytes.length },
            ReadableStream.from(failing()),
          ),
        ).rejects.toThrow();
        expect(await destination.hasBlob(layer.digest)).toBe(false);
        await destination.putBlob(
          { digest: other.digest, size: other.bytes.length },
          ReadableStream.from([other.bytes]),
        );
        expect(await destination.hasBlob(other.digest, other.bytes.length)).toBe(true);
        expect(await destination.hasBlob(other.digest, other.bytes.length + 1)).toBe(false);
      } finally {
        await destination.close();
      }
    });

    it('refuses a manifest whose bytes do not match the digest it is written under', async () => {
      const image = makeTestImage(uniqueName('dst-bad-manifest'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      try {
        for (const blob of [...image.layers, image.config])
          await destination.putBlob(
            { digest: blob.digest, size: blob.bytes.length },
            ReadableStream.from([blob.bytes]),
          );
        const lying = { ...image.manifest, digest: sha(Buffer.from('another manifest')) };
        await expect(destination.putManifest(lying, 'top')).rejects.toThrow();
      } finally {
        await destination.close();
      }
      expect(await visible(fresh)).toBe(false);
    });

    it('shows nothing of a copy that was closed without its commit', async () => {
      const image = makeTestImage(uniqueName('dst-abort'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      if (factory.visibleAt === 'commit') await writeImage(destination, image, 'top');
      else {
        // An aborted copy never reaches its top manifest: blobs only.
        for (const blob of [...image.layers, image.config])
          await destination.putBlob(
            { digest: blob.digest, size: blob.bytes.length },
            ReadableStream.from([blob.bytes]),
          );
      }
      await destination.close();
      expect(await visible(fresh)).toBe(false);
    });

    it('a second image copied to the same reference replaces the first', async () => {
      const [first, second] = [
        makeTestImage(uniqueName('dst-first')),
        makeTestImage(uniqueName('dst-second')),
      ];
      const fresh = await factory.fresh();
      for (const [destination, image] of [
        [fresh.destination, first],
        [await fresh.again(), second],
      ] as const) {
        await destination.init();
        await writeImage(destination, image, 'top');
        await destination.commit();
        await destination.close();
      }
      const source = await fresh.readBack();
      try {
        const raw = await source.getManifest();
        expect(JSON.parse(raw.bytes.toString()).config.digest).toBe(second.config.digest);
        for (const blob of [second.config, ...second.layers])
          expect((await readAll(await source.openBlob(blobRef(blob)))).equals(blob.bytes)).toBe(true);
      } finally {
        await source.close();
      }
      const reopened = await fresh.again();
      try {
        const existing = await reopened.existingManifest();
        expect(existing && JSON.parse(existing.bytes.toString()).config.digest).toBe(second.config.digest);
      } finally {
        await reopened.close();
      }
    });

    it('keeps an index with its images where it holds indexes, and refuses one where it does not', async () => {
      const index = makeTestIndex(uniqueName('dst-index'));
      const fresh = await factory.fresh();
      const { destination } = fresh;
      await destination.init();
      if (!destination.traits.indexes) {
        await expect(writeImage(destination, index.images[0]!, 'child')).rejects.toThrow();
        await destination.close();
        return;
      }
      for (const image of index.images) await writeImage(destination, image, 'child');
      await destination.putManifest(index.index, 'top');
      await destination.commit();
      await destination.close();
      const source = await fresh.readBack();
      try {
        const raw = await source.getManifest();
        expect(raw.bytes.equals(index.index.bytes)).toBe(true);
        for (const image of index.images) {
          const child = await source.getManifestByDigest(image.manifest.digest);
          expect(child.bytes.equals(image.manifest.bytes)).toBe(true);
        }
      } finally {
        await source.close();
      }
    });
  });
}
