// skiff's format readers against chunked images written by the real tools (fixtures/parts/chunked.sh
// and estargz.sh): skopeo 1.18 (current zstd:chunked), Debian's skopeo 1.9.3 (older zstd:chunked),
// and the stargz-snapshotter library (eStargz, gzip and zstd). Every blob is read straight from the
// committed OCI layouts; every check ends at the config's DiffID.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { type Digest, sha256 } from '../../src/digest/index.js';
import { VerificationError } from '../../src/errors/index.js';
import { decompressor } from '../../src/formats/compression.js';
import { detectLayerFormat, type LayerFormat, type ZstdChunkedInfo } from '../../src/formats/detect.js';
import { ESTARGZ_FOOTER, estargzTocOffset, readEstargzToc } from '../../src/formats/estargz.js';
import { normalizeEntryPath } from '../../src/formats/paths.js';
import { readTar, type TarEntry } from '../../src/formats/tar.js';
import {
  checkLegacyFooter,
  countTocEntries,
  decompressBounded,
  decompressChunk,
  LEGACY_FOOTER,
  metadataRanges,
  parseChunkedMetadata,
  readContainersTarSplit,
  TocUnverifiableError,
} from '../../src/formats/zstd-chunked.js';
import { describeChunked } from '../../src/inspect/chunked.js';
import { wantsToc } from '../../src/strategy/index.js';
import { OciLayoutSource } from '../../src/transport/oci-layout.js';

/** The strategy module's answer for a layer of a local OCI layout (what `skiff inspect` asks). */
function candidate(
  layer: { digest: string; size: number },
  format: ReturnType<typeof detectLayerFormat>,
): boolean {
  return wantsToc(
    { manifestKind: 'oci', sourceRanges: 'yes', mode: 'auto', decryptionKeys: 0 },
    {
      index: 0,
      digest: layer.digest as `sha256:${string}`,
      size: layer.size,
      format,
      diffID: undefined,
      inStore: false,
    },
  );
}

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');

interface Layer {
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string>;
}

interface Fixture {
  dir: string;
  layers: Layer[];
  diffIDs: Digest[];
  blob(digest: Digest): Buffer;
}

function loadFixture(name: string): Fixture {
  const dir = path.join(FIXTURES, name);
  const blob = (digest: Digest) => fs.readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
  const json = (digest: Digest) => JSON.parse(blob(digest).toString('utf8'));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const manifest = json(index.manifests[0].digest);
  return { dir, layers: manifest.layers, diffIDs: json(manifest.config.digest).rootfs.diff_ids, blob };
}

/** Decompresses a whole blob the way a full pull does (skiff's own decompressor). */
async function decompressWhole(bytes: Buffer, compression: 'gzip' | 'zstd'): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of Readable.from([bytes]).pipe(decompressor(compression)!))
    parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** The entries of a tar, with the content of the ones named in `keep`. */
async function tarEntries(tar: Buffer, keep = new Set<string>()) {
  const entries: TarEntry[] = [];
  const contents = new Map<string, Buffer>();
  let parts: Buffer[] | undefined;
  for await (const token of readTar(
    (async function* () {
      yield tar;
    })(),
  )) {
    if (token.kind === 'entry') {
      entries.push(token.entry);
      parts = keep.has(token.entry.name) ? [] : undefined;
    } else if (token.kind === 'data') parts?.push(token.bytes);
    else if (token.kind === 'end-entry' && parts) contents.set(entries.at(-1)!.name, Buffer.concat(parts));
  }
  return { entries, contents };
}

function zstdChunked(format: LayerFormat): ZstdChunkedInfo {
  if (format.chunked?.kind !== 'zstd:chunked') throw new Error(`not zstd:chunked: ${format.report}`);
  return format.chunked;
}

const tocBytes = (blob: Buffer, info: ZstdChunkedInfo) =>
  blob.subarray(info.toc.offset, info.toc.offset + info.toc.length);

/** The TOC JSON of a zstd:chunked (or zstd eStargz) blob, decompressed independently of the readers. */
function tocJson(blob: Buffer, info: ZstdChunkedInfo): { entries: Array<{ type: string; name: string }> } {
  return JSON.parse(
    decompressBounded(tocBytes(blob, info), info.toc.uncompressedLength, 'TOC').toString('utf8'),
  );
}

/** The plain image's uncompressed layer tars, which the chunked images were made from. */
const plain = loadFixture('plain');
const plainTars = plain.layers.map((l) => plain.blob(l.digest));

describe('chunked (zstd:chunked, current generation, skopeo 1.18)', () => {
  const fx = loadFixture('chunked');

  it('is recognised as current-generation zstd:chunked with a tar-split', () => {
    expect(fx.layers).toHaveLength(2);
    for (const layer of fx.layers) {
      const format = detectLayerFormat(layer);
      expect(format).toMatchObject({
        compression: 'zstd',
        encrypted: false,
        hasTarSplit: true,
        report: 'zstd:chunked',
        chunked: { kind: 'zstd:chunked', generation: 'current' },
      });
      const info = zstdChunked(format);
      expect(info.tarSplit).toBeDefined();
      expect(info.tocDigest).toBe(layer.annotations?.['io.github.containers.zstd-chunked.manifest-checksum']);
    }
  });

  it('keeps the DiffIDs of the plain image (the decompressed stream is the original tar)', async () => {
    expect(fx.diffIDs).toEqual(plain.diffIDs);
    for (const [i, layer] of fx.layers.entries()) {
      const tar = await decompressWhole(fx.blob(layer.digest), 'zstd');
      expect(tar.equals(plainTars[i]!)).toBe(true);
      expect(sha256(tar)).toBe(fx.diffIDs[i]);
    }
  });

  it('verifies TOC, footer and tar-split read from the metadata ranges, and rebuilds the DiffID', async () => {
    for (const [i, layer] of fx.layers.entries()) {
      const blob = fx.blob(layer.digest);
      expect(blob.length).toBe(layer.size);
      const info = zstdChunked(detectLayerFormat(layer));
      // Only the ranges a partial pull would fetch.
      const fetched = metadataRanges(info, layer.size).map((r) => ({
        start: r.start,
        bytes: blob.subarray(r.start, r.end),
      }));
      const { toc, tarSplit } = parseChunkedMetadata(info, layer.size, fetched);
      expect(toc.entryCount).toBe(tocJson(blob, info).entries.length);
      expect(toc.tarSplitDigest).toBe(sha256(tarSplit));

      // Every file from its own frames, checked chunk by chunk, then indexed by its digest.
      const byDigest = new Map<Digest, Buffer>();
      for (const file of toc.files) {
        const pieces: Buffer[] = [];
        for (const chunk of file.chunks) {
          const bytes = chunk.zeros
            ? Buffer.alloc(chunk.size)
            : await decompressChunk(blob.subarray(chunk.start, chunk.end), chunk.size);
          expect(sha256(bytes)).toBe(chunk.digest);
          pieces.push(bytes);
        }
        const content = Buffer.concat(pieces);
        expect(content.length).toBe(file.size);
        expect(sha256(content)).toBe(file.digest);
        byDigest.set(file.digest, content);
      }
      // Every regular file with content is in the TOC, and large ones come in several chunks.
      const { entries: plainEntries } = await tarEntries(plainTars[i]!);
      expect([...toc.files].map((f) => f.path)).toEqual(
        plainEntries
          .filter((e) => e.type === 'file' && e.size > 0)
          .map((e) => normalizeEntryPath(e.name, 'tar')),
      );
      expect([...toc.files].some((f) => f.chunks.length > 1)).toBe(true);

      // tar-split segments + file contents in order = the original tar, byte for byte.
      const out: Buffer[] = [];
      const files = [...toc.files];
      for await (const record of readContainersTarSplit(tarSplit)) {
        if (record.kind === 'segment') {
          out.push(record.bytes);
          continue;
        }
        if (record.size === 0) continue;
        const file = files.shift()!;
        expect(normalizeEntryPath(record.name, 'tar-split')).toBe(file.path);
        expect(record.size).toBe(file.size);
        out.push(byDigest.get(file.digest)!);
      }
      expect(files).toEqual([]);
      const rebuilt = Buffer.concat(out);
      expect(rebuilt.length).toBe(plainTars[i]!.length);
      expect(sha256(rebuilt)).toBe(fx.diffIDs[i]);
    }
  });

  it('rejects a TOC or tar-split that is not what the annotations and footer promise', () => {
    const [layer] = fx.layers;
    const blob = Buffer.from(fx.blob(layer!.digest));
    const info = zstdChunked(detectLayerFormat(layer!));
    // One flipped bit in the TOC fails the manifest-checksum annotation.
    const tampered = Buffer.from(blob);
    tampered[info.toc.offset + 10]! ^= 1;
    expect(() => parseChunkedMetadata(info, layer!.size, [{ start: 0, bytes: tampered }])).toThrow(
      /TOC digest mismatch/,
    );
    // One flipped bit in the tar-split fails the TOC's tarSplitDigest.
    const split = Buffer.from(blob);
    split[info.tarSplit!.offset + 10]! ^= 1;
    expect(() => parseChunkedMetadata(info, layer!.size, [{ start: 0, bytes: split }])).toThrow(
      /tar-split digest mismatch/,
    );
  });

  it('a publisher-signed TOC with odd field values: unverifiable (a fallback), hostile (exit 4) or sound', () => {
    const [layer] = fx.layers;
    const blob = fx.blob(layer!.digest);
    const info = zstdChunked(detectLayerFormat(layer!));
    const original = tocJson(blob, info) as unknown as { entries: Array<Record<string, unknown>> };
    const dataEnd = info.toc.offset - 8;
    const odd = [-1, 0, 1, 2 ** 53, 1.5, dataEnd, dataEnd + 1, '12', null, '', '../up', '/abs', 'sha256:00'];
    const fields = [
      'type',
      'name',
      'linkName',
      'size',
      'digest',
      'offset',
      'endOffset',
      'chunkSize',
      'chunkOffset',
    ];
    let state = 20261123;
    const pick = (n: number) => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % n;
    };
    let refused = 0;
    for (let round = 0; round < 300; round++) {
      const toc = structuredClone(original);
      for (let i = 1 + pick(2); i > 0; i--) {
        const entry = toc.entries[pick(toc.entries.length)]!;
        const field = fields[pick(fields.length)]!;
        entry[field] = pick(4) === 0 ? toc.entries[pick(toc.entries.length)]![field] : odd[pick(odd.length)];
      }
      // Signed as the publisher would sign it: new digest and sizes in the annotations and footer.
      const json = Buffer.from(JSON.stringify(toc));
      const compressed = compress(json);
      const signed: ZstdChunkedInfo = {
        ...info,
        tocDigest: sha256(compressed),
        toc: { ...info.toc, length: compressed.length, uncompressedLength: json.length },
      };
      const footer = Buffer.from(blob.subarray(layer!.size - 72));
      footer.writeBigUInt64LE(BigInt(compressed.length), 16);
      footer.writeBigUInt64LE(BigInt(json.length), 24);
      const parts = [
        {
          start: info.tarSplit!.offset,
          bytes: blob.subarray(info.tarSplit!.offset, info.tarSplit!.offset + info.tarSplit!.length),
        },
        { start: layer!.size - 72, bytes: footer },
        { start: info.toc.offset, bytes: compressed },
      ];
      try {
        const { toc: valid } = parseChunkedMetadata(signed, layer!.size, parts);
        // Whatever got through is sound: ranges inside the data, sizes that add up.
        for (const file of valid.files) {
          expect(
            file.chunks.reduce((sum, c) => sum + c.size, 0),
            `round ${round}`,
          ).toBe(file.size);
          for (const c of file.chunks)
            expect(c.start < c.end && c.end <= dataEnd, `round ${round}`).toBe(true);
        }
      } catch (error) {
        const known = error instanceof VerificationError || error instanceof TocUnverifiableError;
        expect(known, `round ${round}: ${(error as Error).stack}`).toBe(true);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
  });
});

describe('chunked-legacy (older zstd:chunked, skopeo 1.9.3, tars without record padding)', () => {
  const fx = loadFixture('chunked-legacy');

  it('is recognised as older-generation zstd:chunked without a tar-split', () => {
    for (const layer of fx.layers) {
      const format = detectLayerFormat(layer);
      expect(format).toMatchObject({
        compression: 'zstd',
        hasTarSplit: false,
        report: 'zstd:chunked',
        chunked: { kind: 'zstd:chunked', generation: 'legacy' },
      });
      expect(zstdChunked(format).tarSplit).toBeUndefined();
    }
  });

  it('has a legacy footer that agrees with the annotations and a TOC that verifies', async () => {
    for (const layer of fx.layers) {
      const blob = fx.blob(layer.digest);
      const info = zstdChunked(detectLayerFormat(layer));
      const footer = blob.subarray(blob.length - LEGACY_FOOTER);
      expect(footer.toString('latin1', 40)).toBe('GnUlInUx');
      checkLegacyFooter(info, footer);
      const entries = countTocEntries(tocBytes(blob, info), info);
      const json = tocJson(blob, info);
      expect(entries).toBe(json.entries.length);
      // The TOC lists every entry of the tar, in order, plus chunk entries for pieces of large files.
      const tar = await tarEntries(await decompressWhole(blob, 'zstd'));
      const tocNames = json.entries
        .filter((e) => e.type !== 'chunk')
        .map((e) => normalizeEntryPath(e.name, 'TOC'));
      expect(tocNames).toEqual(tar.entries.map((e) => normalizeEntryPath(e.name, 'tar')));
      expect(json.entries.some((e) => e.type === 'chunk')).toBe(true);
    }
  });

  it('decompresses to the tar its DiffID names: the plain tar without its record padding', async () => {
    for (const [i, layer] of fx.layers.entries()) {
      const tar = await decompressWhole(fx.blob(layer.digest), 'zstd');
      expect(sha256(tar)).toBe(fx.diffIDs[i]);
      expect(tar.length % 512).toBe(0);
      expect(tar.length).toBeLessThan(plainTars[i]!.length);
      expect(tar.equals(plainTars[i]!.subarray(0, tar.length))).toBe(true);
    }
  });

  it('rejects a footer that disagrees with the annotations', () => {
    const [layer] = fx.layers;
    const blob = fx.blob(layer!.digest);
    const info = zstdChunked(detectLayerFormat(layer!));
    const footer = Buffer.from(blob.subarray(blob.length - LEGACY_FOOTER));
    footer.writeBigUInt64LE(BigInt(info.toc.offset + 1), 8);
    expect(() => checkLegacyFooter(info, footer)).toThrow(/legacy footer/);
    // The current generation's 72-byte footer check must not accept the legacy one.
    expect(() => parseChunkedMetadata(info, layer!.size, [{ start: 0, bytes: blob }])).toThrow();
  });
});

describe('chunked-legacy-bad (older zstd:chunked from padded tars: the DiffID defect)', () => {
  const fx = loadFixture('chunked-legacy-bad');
  const good = loadFixture('chunked-legacy');

  it('is recognised as older zstd:chunked and its TOC still verifies', () => {
    for (const layer of fx.layers) {
      const info = zstdChunked(detectLayerFormat(layer));
      expect(info.generation).toBe('legacy');
      const blob = fx.blob(layer.digest);
      checkLegacyFooter(info, blob.subarray(blob.length - LEGACY_FOOTER));
      expect(countTocEntries(tocBytes(blob, info), info)).toBeGreaterThan(10);
    }
  });

  it('decompresses to fewer bytes than the tar its DiffID names: the trailing zeros are gone', async () => {
    // The config is the plain image's: its DiffIDs name the 10 KiB-padded tars.
    expect(fx.diffIDs).toEqual(plain.diffIDs);
    for (const [i, layer] of fx.layers.entries()) {
      const original = plainTars[i]!;
      expect(sha256(original)).toBe(fx.diffIDs[i]);
      const tar = await decompressWhole(fx.blob(layer.digest), 'zstd');
      expect(tar.length).not.toBe(original.length);
      expect(tar.length).toBeLessThan(original.length);
      expect(sha256(tar)).not.toBe(fx.diffIDs[i]);
      // Exactly the padding is missing: a prefix of the original, the rest all zeros.
      expect(tar.equals(original.subarray(0, tar.length))).toBe(true);
      expect(original.subarray(tar.length).every((b) => b === 0)).toBe(true);
    }
  });

  it('holds the very same blobs as chunked-legacy, claimed for other DiffIDs', () => {
    expect(fx.layers.map((l) => l.digest)).toEqual(good.layers.map((l) => l.digest));
    expect(fx.diffIDs).not.toEqual(good.diffIDs);
  });
});

describe('estargz (gzip eStargz, stargz-snapshotter)', () => {
  const fx = loadFixture('estargz');

  it('is recognised as gzip eStargz without a tar-split', () => {
    for (const layer of fx.layers) {
      const format = detectLayerFormat(layer);
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
      expect(format).toMatchObject({
        compression: 'gzip',
        hasTarSplit: false,
        report: 'estargz',
        chunked: {
          kind: 'estargz',
          compression: 'gzip',
          tocDigest: layer.annotations?.['containerd.io/snapshot/stargz/toc.digest'],
          uncompressedSize: Number(layer.annotations?.['io.containers.estargz.uncompressed-size']),
        },
      });
    }
  });

  it('locates the TOC from the footer, verifies its digest and counts its entries', async () => {
    for (const layer of fx.layers) {
      const blob = fx.blob(layer.digest);
      const format = detectLayerFormat(layer);
      if (format.chunked?.kind !== 'estargz') throw new Error('not estargz');
      const offset = estargzTocOffset(blob.subarray(blob.length - ESTARGZ_FOOTER));
      expect(offset).toBeGreaterThan(0);
      expect(offset).toBeLessThan(blob.length - ESTARGZ_FOOTER);
      const { entries } = await readEstargzToc(
        blob.subarray(offset, blob.length - ESTARGZ_FOOTER),
        format.chunked.tocDigest,
      );
      // Independently: the last tar entry of the whole stream is the TOC.
      const tar = await tarEntries(await decompressWhole(blob, 'gzip'), new Set(['stargz.index.json']));
      expect(tar.entries.at(-1)?.name).toBe('stargz.index.json');
      expect(tar.entries[0]?.name).toBe('.no.prefetch.landmark');
      const json = tar.contents.get('stargz.index.json')!;
      expect(sha256(json)).toBe(format.chunked.tocDigest);
      expect(entries).toBe(JSON.parse(json.toString('utf8')).entries.length);
      // A wrong digest is refused.
      await expect(
        readEstargzToc(blob.subarray(offset, blob.length - ESTARGZ_FOOTER), sha256('other')),
      ).rejects.toThrow(/TOC digest mismatch/);
    }
  });

  it('gunzips to the tar its DiffID names (eStargz rewrote it: not the plain tar)', async () => {
    for (const [i, layer] of fx.layers.entries()) {
      const tar = await decompressWhole(fx.blob(layer.digest), 'gzip');
      expect(sha256(tar)).toBe(fx.diffIDs[i]);
      expect(tar.length).toBe(Number(layer.annotations?.['io.containers.estargz.uncompressed-size']));
      expect(fx.diffIDs[i]).not.toBe(plain.diffIDs[i]);
    }
  });
});

describe('estargz-zstd (zstd eStargz, stargz-snapshotter zstdchunked)', () => {
  const fx = loadFixture('estargz-zstd');
  const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';

  it('carries the annotations the real converter sets', () => {
    for (const layer of fx.layers) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      expect(Object.keys(layer.annotations ?? {}).sort()).toEqual([
        TOC_DIGEST,
        'io.containers.estargz.uncompressed-size',
        'io.containers.zstd-chunked.manifest-checksum',
        'io.containers.zstd-chunked.manifest-position',
      ]);
    }
  });

  // The real converter also sets the older zstd:chunked annotations; toc.digest must win (docs/formats.md).
  it('is reported as zstd eStargz, as docs/formats.md says', () => {
    for (const layer of fx.layers) {
      expect(detectLayerFormat(layer)).toMatchObject({
        compression: 'zstd',
        hasTarSplit: false,
        report: 'estargz',
        chunked: { kind: 'estargz', compression: 'zstd' },
      });
    }
  });

  it('is readable with the older zstd:chunked readers, and its TOC is the one toc.digest names', () => {
    for (const layer of fx.layers) {
      const blob = fx.blob(layer.digest);
      // Seen without toc.digest, the same layer is an older zstd:chunked one.
      const { [TOC_DIGEST]: _tocDigest, ...legacyOnly } = layer.annotations ?? {};
      const format = detectLayerFormat({ ...layer, annotations: legacyOnly });
      expect(format.hasTarSplit).toBe(false);
      const info = zstdChunked(format);
      checkLegacyFooter(info, blob.subarray(blob.length - LEGACY_FOOTER));
      expect(countTocEntries(tocBytes(blob, info), info)).toBe(tocJson(blob, info).entries.length);
      const json = decompressBounded(tocBytes(blob, info), info.toc.uncompressedLength, 'TOC');
      expect(sha256(json)).toBe(layer.annotations?.[TOC_DIGEST]);
    }
  });

  it('zstd-decompresses to the tar its DiffID names', async () => {
    for (const [i, layer] of fx.layers.entries()) {
      const tar = await decompressWhole(fx.blob(layer.digest), 'zstd');
      expect(sha256(tar)).toBe(fx.diffIDs[i]);
      expect(tar.length).toBe(Number(layer.annotations?.['io.containers.estargz.uncompressed-size']));
      const { entries } = await tarEntries(tar);
      expect(entries[0]?.name).toBe('.no.prefetch.landmark');
    }
  });

  // With only toc.digest (the form docs/formats.md describes) the TOC is found by the 48-byte footer.
  it('inspects a zstd eStargz layer that carries only the toc.digest annotation', async () => {
    const source = new OciLayoutSource({ transport: 'oci', dir: fx.dir, tag: 'latest' });
    for (const layer of fx.layers) {
      const stripped = { ...layer, annotations: { [TOC_DIGEST]: layer.annotations![TOC_DIGEST]! } };
      const format = detectLayerFormat(stripped);
      expect(format.chunked).toMatchObject({ kind: 'estargz', compression: 'zstd' });
      const description = await describeChunked(source, stripped, format, candidate(stripped, format));
      expect(description?.note ?? '').not.toMatch(/unverifiable/);
      expect(description?.entries).toBeGreaterThan(0);
    }
  });
});

describe('inspect (describeChunked) on every chunked fixture, from the OCI layout', () => {
  const cases: Array<[string, { kind: string; partialPossible: boolean; tarSplit: boolean }]> = [
    ['chunked', { kind: 'zstd:chunked', partialPossible: true, tarSplit: true }],
    ['chunked-legacy', { kind: 'zstd:chunked', partialPossible: false, tarSplit: false }],
    ['chunked-legacy-bad', { kind: 'zstd:chunked', partialPossible: false, tarSplit: false }],
    ['estargz', { kind: 'estargz', partialPossible: false, tarSplit: false }],
    ['estargz-zstd', { kind: 'estargz', partialPossible: false, tarSplit: false }],
  ];
  it.each(cases)('%s: reads and verifies the TOC', async (name, expected) => {
    const fx = loadFixture(name);
    const source = new OciLayoutSource({ transport: 'oci', dir: fx.dir, tag: 'latest' });
    for (const layer of fx.layers) {
      const description = await describeChunked(
        source,
        layer,
        detectLayerFormat(layer),
        candidate(layer, detectLayerFormat(layer)),
      );
      expect(description).toMatchObject(expected);
      expect(description?.note ?? '').not.toMatch(/unverifiable/);
      expect(description?.entries).toBeGreaterThan(10);
    }
  });
});

describe('the TOC read entry by entry', () => {
  const fx = loadFixture('chunked');
  const [layer] = fx.layers;
  const blob = fx.blob(layer!.digest);
  const info = zstdChunked(detectLayerFormat(layer!));
  const original = tocJson(blob, info) as unknown as { entries: Array<Record<string, unknown>> };

  /** parseChunkedMetadata of the blob with its TOC replaced by `text`, signed as a publisher would. */
  const parseWith = (text: string) => {
    const json = Buffer.from(text);
    const compressed = compress(json);
    const signed: ZstdChunkedInfo = {
      ...info,
      tocDigest: sha256(compressed),
      toc: { ...info.toc, length: compressed.length, uncompressedLength: json.length },
    };
    const footer = Buffer.from(blob.subarray(layer!.size - 72));
    footer.writeBigUInt64LE(BigInt(compressed.length), 16);
    footer.writeBigUInt64LE(BigInt(json.length), 24);
    const tarSplit = blob.subarray(info.tarSplit!.offset, info.tarSplit!.offset + info.tarSplit!.length);
    return parseChunkedMetadata(signed, layer!.size, [
      { start: info.tarSplit!.offset, bytes: tarSplit },
      { start: layer!.size - 72, bytes: footer },
      { start: info.toc.offset, bytes: compressed },
    ]).toc;
  };
  const expected = parseWith(JSON.stringify(original));

  it('reads any layout of the same JSON alike: spacing, key order, brackets and quotes inside strings', () => {
    const { entries, ...rest } = original;
    const odd = {
      before: { text: 'a}]"[{\\', list: [[], {}] },
      entries: entries.map((e, i) => ({ note: `}${i}]\\"{[`, ...e })),
      ...rest,
    };
    expect(parseWith(JSON.stringify(odd, null, 2))).toEqual(expected);
    expect(parseWith(JSON.stringify(odd, null, '\t').replaceAll(',', ' ,'))).toEqual(expected);
  });

  it('refuses what is not one JSON document with one array of entry objects', () => {
    const text = JSON.stringify(original);
    const broken = {
      'a missing comma': text.replace('},{', '}{'),
      'a trailing comma': text.replace(/}]/, '},]'),
      'entries twice': text.replace('{"version":1', `{"entries":[],"version":1`),
      'an entry that is a number': text.replace('"entries":[', '"entries":[7,'),
      'no entries': JSON.stringify({ version: 1, tarSplitDigest: '' }),
      'a broken entry': text.replace('"type":', '"type"'),
      'a broken head': text.replace('"version":1', '"version":'),
    };
    for (const [what, json] of Object.entries(broken))
      expect(() => parseWith(json), what).toThrow(TocUnverifiableError);
  });

  it('names the entry and field that do not validate', () => {
    const entries = original.entries.map((e, i) => (i === 2 ? { ...e, size: 'big' } : e));
    expect(() => parseWith(JSON.stringify({ ...original, entries }))).toThrow(
      /TOC does not validate: entries\.2\.size: /,
    );
  });

  // The entries are checked by hand, no longer by zod: each check still refuses with zod's words.
  it('refuses each field that does not validate with the message zod gave', () => {
    const at = original.entries.findIndex((e) => e.type === 'reg' && Number(e.size) > 0);
    const refusals: Array<[Record<string, unknown> | number, string]> = [
      [7, ': Invalid input: expected object, received number'],
      [
        { type: 'file' },
        '.type: Invalid option: expected one of "reg"|"dir"|"symlink"|"hardlink"|"fifo"|"char"|"block"|"chunk"',
      ],
      [{ name: null }, '.name: Invalid input: expected string, received null'],
      [{ linkName: 5 }, '.linkName: Invalid input: expected string, received number'],
      [{ mode: 1.5 }, '.mode: Invalid input: expected int, received number'],
      [{ mode: 2 ** 53 }, '.mode: Too big: expected int to be <=9007199254740991'],
      [{ mode: -(2 ** 53) }, '.mode: Too small: expected int to be >=-9007199254740991'],
      [{ size: 'big' }, '.size: Invalid input: expected number, received string'],
      [{ size: -1 }, '.size: Too small: expected number to be >=0'],
      [{ size: [] }, '.size: Invalid input: expected number, received array'],
      [{ digest: 'sha256:00' }, '.digest: not a sha256 digest'],
      [{ digest: 5 }, '.digest: Invalid input: expected string, received number'],
      [{ offset: true }, '.offset: Invalid input: expected number, received boolean'],
      [{ endOffset: -2 }, '.endOffset: Too small: expected number to be >=0'],
      [{ chunkSize: {} }, '.chunkSize: Invalid input: expected number, received object'],
      [{ chunkOffset: 0.5 }, '.chunkOffset: Invalid input: expected int, received number'],
      [{ chunkDigest: `sha256:${'A'.repeat(64)}` }, '.chunkDigest: not a sha256 digest'],
      [{ chunkType: 1 }, '.chunkType: Invalid input: expected string, received number'],
    ];
    for (const [change, message] of refusals) {
      const entries = original.entries.map((e, i) =>
        i === at ? (typeof change === 'number' ? change : { ...e, ...change }) : e,
      );
      const text = JSON.stringify({ ...original, entries });
      expect(() => parseWith(text), message).toThrow(
        new TocUnverifiableError(`TOC does not validate: entries.${at}${message}`),
      );
    }
    // JSON's 1e400 is Infinity, which zod named as such.
    const text = JSON.stringify({ ...original }).replace(/"size":(\d+)/, '"size":1e400');
    expect(() => parseWith(text)).toThrow(
      /entries\.\d+\.size: Invalid input: expected number, received Infinity$/,
    );
  });

  it('reads a TOC of many entries alike wherever "},{" falls: between entries or inside a name', () => {
    const { entries, ...rest } = original;
    // Names full of "},{", enough of them that the entries are parsed in several batches.
    const odd = Array.from({ length: 1500 }, (_, i) => ({
      type: 'dir',
      name: `odd/${'},{'.repeat(40)}${i}`,
    }));
    for (let shift = 0; shift < 6; shift++) {
      const padded = [{ type: 'dir', name: `pad${'x'.repeat(shift * 7)}` }, ...odd, ...entries];
      const toc = parseWith(JSON.stringify({ entries: padded, ...rest }));
      expect(toc.entryCount, `shift ${shift}`).toBe(expected.entryCount + odd.length + 1);
      expect(toc.files, `shift ${shift}`).toEqual(expected.files);
    }
  });
});
