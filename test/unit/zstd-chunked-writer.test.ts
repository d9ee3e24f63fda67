// The zstd:chunked writer against skiff's own readers: the blob decompresses to the input tar byte
// for byte, its metadata passes parseChunkedMetadata's checks, every chunk verifies, and the
// tar-split rebuilds the input. Chunk boundaries and the CRC are pinned to values containers/storage
// (skopeo 1.18) and Go's hash/crc64 produced for the same bytes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DecompressStream } from 'zstd-napi';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom } from '../../fixtures/lib/trees.mjs';
import { type Digest, sha256 } from '../../src/digest/index.js';
import { ContentChunker } from '../../src/formats/chunker.js';
import { Crc64, crc64 } from '../../src/formats/crc64.js';
import { detectLayerFormat, type ZstdChunkedInfo } from '../../src/formats/detect.js';
import { normalizeEntryPath } from '../../src/formats/paths.js';
import {
  decompressBounded,
  decompressChunk,
  metadataRanges,
  parseChunkedMetadata,
  readContainersTarSplit,
  type TocEntry,
  TocEntrySchema,
} from '../../src/formats/zstd-chunked.js';
import {
  type ConvertedLayer,
  UnconvertibleLayerError,
  writeZstdChunked,
} from '../../src/formats/zstd-chunked-writer.js';
import { END, entry, padded, paxRecord, ustarHeader } from '../harness/tar-writer.js';

const random = (seed: string, size: number) => pseudoRandom(seed, size) as Buffer;

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-zc-writer-'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** A PAX tar with what GNU tar will not produce here: xattrs, nanosecond times, huge ids, devices. */
function paxTar(): Buffer {
  const longDir = `pax/${'d'.repeat(120)}/${'e'.repeat(120)}`;
  const longFile = `${longDir}/a-file-whose-name-is-long-${'f'.repeat(60)}.txt`;
  const content = Buffer.from('content behind a long name\n');
  return Buffer.concat([
    entry({ name: 'pax/', type: '5', mode: 0o755 }),
    entry({ name: 'placeholder', type: '5', mode: 0o750 }, undefined, [['path', `${longDir}/`]]),
    entry({ name: 'placeholder', mode: 0o4755, uid: 0 }, content, [
      ['path', longFile],
      ['mtime', '1700000000.123456789'],
      ['atime', '1700000001.5'],
      ['ctime', '1700000002.25'],
      ['uid', '3000000'],
      ['gid', '42'],
      ['SCHILY.xattr.user.comment', 'a < b & c'],
      ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0])],
    ]),
    entry({ name: 'pax/hardlink', type: '1' }, undefined, [['linkpath', longFile]]),
    entry({ name: 'pax/symlink', type: '2', mode: 0o777 }, undefined, [
      ['linkpath', `../${'t'.repeat(200)}`],
    ]),
    entry({ name: 'pax/null', type: '3', mode: 0o666, devmajor: 1, devminor: 3 }),
    entry({ name: 'pax/empty', mtime: 0 }),
    entry(
      { name: 'pax/sparse.bin' },
      Buffer.concat([random('pax-a', 3000), Buffer.alloc(5000), random('pax-b', 100_000)]),
    ),
    END,
  ]);
}

// ---- GNU tar over a real tree --------------------------------------------------------------------

function gnuTree(dir: string): void {
  const long = path.join(dir, `long-${'n'.repeat(110)}`, `deeper-${'m'.repeat(110)}`);
  fs.mkdirSync(long, { recursive: true });
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.writeFileSync(path.join(dir, 'etc', 'hostname'), 'skiff\n');
  fs.writeFileSync(path.join(dir, 'etc', 'empty'), '');
  fs.writeFileSync(path.join(long, `file-${'x'.repeat(80)}.txt`), 'long path\n');
  fs.writeFileSync(path.join(dir, 'big.bin'), random('gnu-big', 25 * 1024 * 1024));
  fs.writeFileSync(path.join(dir, 'holes.bin'), Buffer.concat([random('h', 9000), Buffer.alloc(70_000)]));
  fs.linkSync(path.join(dir, 'etc', 'hostname'), path.join(dir, 'etc', 'hostname.hard'));
  fs.symlinkSync('etc/hostname', path.join(dir, 'link'));
  fs.chmodSync(path.join(dir, 'etc', 'hostname'), 0o4755);
  execFileSync('mkfifo', [path.join(dir, 'etc', 'fifo')]);
}

function gnuTar(format: 'gnu' | 'posix', name: string): Buffer {
  const dir = path.join(work, `${name}-tree`);
  if (!fs.existsSync(dir)) gnuTree(dir);
  const out = path.join(work, `${name}.tar`);
  execFileSync('tar', ['--sort=name', '--numeric-owner', `--format=${format}`, '-C', dir, '-cf', out, '.']);
  return fs.readFileSync(out);
}

// ---- checks ----------------------------------------------------------------------------------------

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function convert(tar: Buffer, name: string, pieceSize = 64 * 1024): Promise<[ConvertedLayer, Buffer]> {
  const out = path.join(work, `${name}.zst`);
  const layer = await writeZstdChunked(pieces(tar, pieceSize), out);
  return [layer, fs.readFileSync(out)];
}

async function decompressAll(blob: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of Readable.from([blob]).pipe(new DecompressStream())) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Everything a reader can check about one converted layer; returns the TOC entries. */
async function verify(tar: Buffer, layer: ConvertedLayer, blob: Buffer): Promise<TocEntry[]> {
  expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
  expect(layer.size).toBe(blob.length);
  expect(layer.digest).toBe(sha256(blob));
  expect(layer.diffID).toBe(sha256(tar));
  expect((await decompressAll(blob)).equals(tar)).toBe(true);

  const format = detectLayerFormat({ ...layer, annotations: layer.annotations });
  expect(format.hasTarSplit).toBe(true);
  const info = format.chunked as ZstdChunkedInfo;
  expect(info.generation).toBe('current');
  const fetched = metadataRanges(info, blob.length).map((r) => ({
    start: r.start,
    bytes: blob.subarray(r.start, r.end),
  }));
  const metadata = parseChunkedMetadata(info, blob.length, fetched);

  const contents = new Map<string, Buffer>();
  for (const file of metadata.toc.files) {
    const parts: Buffer[] = [];
    for (const chunk of file.chunks) {
      const bytes = await decompressChunk(blob.subarray(chunk.start, chunk.end), chunk.size);
      expect(sha256(bytes)).toBe(chunk.digest);
      parts.push(bytes);
    }
    const content = Buffer.concat(parts);
    expect(sha256(content)).toBe(file.digest);
    contents.set(file.path, content);
  }

  const rebuilt: Buffer[] = [];
  for await (const record of readContainersTarSplit(metadata.tarSplit)) {
    if (record.kind === 'segment') rebuilt.push(record.bytes);
    else if (record.size > 0) rebuilt.push(contents.get(normalizeEntryPath(record.name, 'tar-split'))!);
  }
  expect(sha256(Buffer.concat(rebuilt))).toBe(layer.diffID);

  const toc = JSON.parse(
    decompressBounded(
      blob.subarray(info.toc.offset, info.toc.offset + info.toc.length),
      info.toc.uncompressedLength,
      'TOC',
    ).toString('utf8'),
  );
  // The writer writes the one TOC entry type, nothing beside it: no key the schema lacks.
  return z.array(z.strictObject(TocEntrySchema.shape)).parse(toc.entries);
}

const byName = (entries: TocEntry[], suffix: string) =>
  entries.filter((e) => e.type !== 'chunk' && e.name.endsWith(suffix));

// ---- tests -----------------------------------------------------------------------------------------

describe('crc64 (Go hash/crc64, ISO table)', () => {
  it('gives the check value of CRC-64/GO-ISO', () => {
    expect(crc64(Buffer.from('123456789')).toString('hex')).toBe('b90956c775a41001');
    expect(crc64(Buffer.alloc(0)).toString('hex')).toBe('0000000000000000');
  });

  it('matches Go on 100 kB of pseudo-random bytes, however the input is split', () => {
    const data = random('crc', 100_000);
    // Computed with Go: crc64.New(crc64.MakeTable(crc64.ISO)) over the same bytes, Sum(nil).
    expect(crc64(data).toString('hex')).toBe('6db5cdc3a0ddcae0');
    for (const size of [1, 3, 7, 8, 9, 4096]) {
      const crc = new Crc64();
      for (let i = 0; i < data.length; i += size) crc.update(data.subarray(i, i + size));
      expect(crc.sum().toString('hex')).toBe('6db5cdc3a0ddcae0');
    }
  });
});

describe('ContentChunker', () => {
  // 150 kB random, 1023 zeros (too few for a hole), 50 kB random, 4096 zeros, 200 kB random, 2000 zeros.
  const a = random('chunker', 400_000);
  const file = Buffer.concat([
    a.subarray(0, 150_000),
    Buffer.alloc(1023),
    a.subarray(150_000, 200_000),
    Buffer.alloc(4096),
    a.subarray(200_000),
    Buffer.alloc(2000),
  ]);
  // The chunk sizes skopeo 1.18 (containers/storage) wrote into the TOC for this file; Z = "zeros".
  const skopeo = '30527 13782 6953 76286 40018 33457 Z4096 165276 20127 14597 Z2000';

  const chunkPieces = (pieces: Buffer[]) => {
    const sizes: string[] = [];
    let current = 0;
    const chunker = new ContentChunker({
      write: (bytes) => {
        current += bytes.length;
      },
      cut: (kind) => {
        if (current === 0) return;
        sizes.push(kind === 'zeros' ? `Z${current}` : String(current));
        current = 0;
      },
    });
    for (const piece of pieces) chunker.push(piece);
    chunker.finish();
    return sizes.join(' ');
  };
  const chunk = (data: Buffer, size: number) => {
    const pieces: Buffer[] = [];
    for (let i = 0; i < data.length; i += size) pieces.push(data.subarray(i, i + size));
    return chunkPieces(pieces);
  };

  it('cuts where containers/storage cuts, whatever the input buffers', () => {
    for (const size of [1, 7, 1000, 1023, 1024, 65_536, file.length]) expect(chunk(file, size)).toBe(skopeo);
  });

  /**
   * containers/storage's algorithm, plainly, over a whole buffer (checked against skopeo above).
   * Also returns the cuts that fall inside a (short) zero run, with where the run ends.
   */
  const reference = (data: Buffer) => {
    let s1 = 64 * 31;
    let s2 = 64 * 63 * 31;
    const window = new Uint8Array(64);
    let position = 0;
    const roll = (ch: number) => {
      const drop = window[position]!;
      s1 = (s1 + ch - drop) | 0;
      s2 = (s2 + s1 - 64 * (drop + 31)) | 0;
      window[position] = ch;
      position = (position + 1) & 63;
    };
    const sizes: string[] = [];
    const cutsInRuns: Array<{ at: number; runEnd: number }> = [];
    let last = 0;
    let i = 0;
    while (i < data.length) {
      let j = i;
      while (j < data.length && data[j] === 0) j++;
      if (j - i >= 1024) {
        if (i > last) sizes.push(String(i - last));
        for (let k = i; k < j; k++) roll(0);
        sizes.push(`Z${j - i}`);
        last = i = j;
        continue;
      }
      roll(data[i++]!);
      if ((s2 & 0xffff) === 0xffff) {
        if (j > i - 1) cutsInRuns.push({ at: i, runEnd: j });
        sizes.push(String(i - last));
        last = i;
      }
    }
    if (i > last) sizes.push(String(i - last));
    return { sizes: sizes.join(' '), cutsInRuns };
  };

  /** Random bytes and zero runs 1 to 1100 long, many near the 64-byte window and the hole size. */
  const zeroRuns = (seed: number) => {
    const noise = random(`runs-${seed}`, 3_000_000);
    const parts: Buffer[] = [];
    for (let at = 0; at + 8 < noise.length; ) {
      const take = 1 + (noise.readUInt16LE(at) % 700);
      parts.push(noise.subarray(at + 8, at + 8 + take));
      const zeros = [1, 2, 63, 64, 65, 1023, 1024, 1025][noise[at + 2]! % 8]! + (noise[at + 3]! % 40);
      parts.push(Buffer.alloc(zeros));
      at += 8 + take;
    }
    return Buffer.concat(parts);
  };

  /** Chunks `data` pushed in pieces that end at `boundaries` (sorted). */
  const chunkAt = (data: Buffer, boundaries: number[]) => {
    const pieces: Buffer[] = [];
    let from = 0;
    for (const to of [...boundaries, data.length]) {
      pieces.push(data.subarray(from, to));
      from = to;
    }
    return chunkPieces(pieces);
  };

  it('agrees with the plain algorithm on data full of zero runs of every length', () => {
    for (let seed = 0; seed < 4; seed++) {
      const data = zeroRuns(seed);
      const { sizes, cutsInRuns } = reference(data);
      expect(cutsInRuns.length).toBeGreaterThan(0);
      expect(chunk(data, 65_536)).toBe(sizes);
      expect(chunk(data, 999)).toBe(sizes);
      // A buffer that ends inside a zero run just after a cut in it: the run is undecided there.
      const undecided = cutsInRuns.filter((c) => c.runEnd > c.at + 1).map((c) => c.at + 1);
      expect(undecided.length).toBeGreaterThan(0);
      expect(chunkAt(data, undecided)).toBe(sizes);
    }
  });

  it('does not cut inside a zero run that turns out to be a hole', () => {
    const data = zeroRuns(0);
    // Lengthen each zero run that holds a cut into a hole: the cut must disappear.
    const parts: Buffer[] = [];
    let from = 0;
    for (const { runEnd } of reference(data).cutsInRuns) {
      parts.push(data.subarray(from, runEnd), Buffer.alloc(1100));
      from = runEnd;
    }
    parts.push(data.subarray(from));
    const holes = Buffer.concat(parts);
    const { sizes } = reference(holes);
    expect(chunk(holes, 65_536)).toBe(sizes);
    expect(chunk(holes, 4099)).toBe(sizes);
  });

  it('makes a file of zeros one zeros chunk, and a short zero run ordinary data', () => {
    expect(chunk(Buffer.alloc(10_000), 333)).toBe('Z10000');
    expect(chunk(Buffer.alloc(1023), 100)).toBe('1023');
    expect(chunk(Buffer.concat([Buffer.alloc(1024), Buffer.from('x')]), 1)).toBe('Z1024 1');
  });
});

describe('writeZstdChunked', () => {
  it('converts a GNU tar (long names, links, fifo, setuid, a 25 MB file) that reads back exactly', async () => {
    const tar = gnuTar('gnu', 'gnu');
    const [layer, blob] = await convert(tar, 'gnu');
    const entries = await verify(tar, layer, blob);

    const big = byName(entries, 'big.bin')[0]!;
    const bigChunks = entries.filter((e) => e.type === 'chunk' && e.name === big.name);
    // 25 MiB of random data at a 64 KiB average chunk: hundreds of chunks.
    expect(bigChunks.length).toBeGreaterThan(200);
    expect(big).toMatchObject({ type: 'reg', size: 25 * 1024 * 1024 });
    expect(big).not.toHaveProperty('chunkOffset');
    expect(big.chunkDigest).toMatch(/^sha256:/);
    expect(byName(entries, 'etc/hostname')[0]).toMatchObject({ mode: 0o4755, size: 6 });
    expect(byName(entries, 'etc/hostname.hard')[0]).toMatchObject({
      type: 'hardlink',
      linkName: './etc/hostname',
    });
    expect(byName(entries, 'link')[0]).toMatchObject({ type: 'symlink', linkName: 'etc/hostname' });
    expect(byName(entries, 'etc/fifo')[0]).toMatchObject({ type: 'fifo' });
    expect(byName(entries, 'etc/empty')[0]).not.toHaveProperty('digest');
    expect(entries.some((e) => e.name.length > 200)).toBe(true);
    const holes = entries.filter((e) => e.name.endsWith('holes.bin'));
    expect(holes.map((e) => e.chunkType)).toEqual([undefined, 'zeros']);
  });

  it('converts a PAX tar (GNU tar --format=posix) that reads back exactly', async () => {
    const tar = gnuTar('posix', 'posix');
    const [layer, blob] = await convert(tar, 'posix');
    const entries = await verify(tar, layer, blob);
    expect(byName(entries, 'etc/hostname')[0]).toHaveProperty('accesstime');
  });

  it('carries xattrs, nanosecond times, PAX ids and devices into the TOC as Go reads them', async () => {
    const tar = paxTar();
    const [layer, blob] = await convert(tar, 'pax', 777);
    const entries = await verify(tar, layer, blob);
    const file = entries.find((e) => e.name.endsWith('.txt'))!;
    expect(file).toMatchObject({
      type: 'reg',
      mode: 0o4755,
      uid: 3_000_000,
      gid: 42,
      modtime: '2023-11-14T22:13:20.123456789Z',
      accesstime: '2023-11-14T22:13:21.5Z',
      changetime: '2023-11-14T22:13:22.25Z',
      xattrs: {
        'security.capability': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0]).toString('base64'),
        'user.comment': Buffer.from('a < b & c').toString('base64'),
      },
    });
    expect(file.name.length).toBeGreaterThan(255);
    expect(entries.find((e) => e.name === 'pax/hardlink')).toMatchObject({ linkName: file.name });
    expect(entries.find((e) => e.name === 'pax/null')).toMatchObject({
      type: 'char',
      devMajor: 1,
      devMinor: 3,
    });
    // A zero mtime is still written, as Go's encoder does (only Go's zero time is omitted).
    expect(entries.find((e) => e.name === 'pax/empty')).toMatchObject({ modtime: '1970-01-01T00:00:00Z' });
    const sparse = entries.filter((e) => e.name === 'pax/sparse.bin');
    expect(sparse.slice(0, 2).map((e) => [e.chunkType, e.chunkSize])).toEqual([
      [undefined, 3000],
      ['zeros', 5000],
    ]);
    const rest = sparse.slice(2);
    expect(rest.every((e) => e.chunkType === undefined)).toBe(true);
    expect(rest.reduce((sum, e) => sum + (e.chunkSize as number), 0)).toBe(100_000);
  });

  it('writes the same blob whatever the input buffers, and keeps trailing bytes of the tar', async () => {
    const tar = Buffer.concat([paxTar(), Buffer.alloc(3 * 512)]);
    const [first, blob] = await convert(tar, 'split-a', 1);
    const [second] = await convert(tar, 'split-b', 100_000);
    expect(second.digest).toBe(first.digest);
    await verify(tar, first, blob);
  });

  it('handles tars without record padding, with one end block, and with none', async () => {
    const body = paxTar().subarray(0, -1024);
    for (const [name, tar] of [
      ['two-blocks', Buffer.concat([body, END])],
      ['one-block', Buffer.concat([body, Buffer.alloc(512)])],
      ['no-end', body],
      ['empty', END],
    ] as const) {
      const [layer, blob] = await convert(tar, name);
      await verify(tar, layer, blob);
    }
  });

  it('refuses tars containers/storage could not pull back, and leaves no file behind', async () => {
    const twice = Buffer.concat([
      entry({ name: 'a' }, Buffer.from('1')),
      entry({ name: './a' }, Buffer.from('2')),
      END,
    ]);
    const comment = paxRecord('comment', 'x');
    const globalPax = Buffer.concat([
      ustarHeader({ name: 'pax_global_header', type: 'g', size: comment.length }),
      padded(comment),
      entry({ name: 'a' }),
      END,
    ]);
    const farFuture = Buffer.concat([entry({ name: 'a' }, undefined, [['mtime', '400000000000']]), END]);
    const contiguous = Buffer.concat([entry({ name: 'c', type: '7' }, Buffer.from('x')), END]);
    for (const [name, tar] of [
      ['twice', twice],
      ['global', globalPax],
      ['far-future', farFuture],
      ['contiguous', contiguous],
    ] as const) {
      const out = path.join(work, `${name}.zst`);
      await expect(writeZstdChunked(pieces(tar, 512), out)).rejects.toBeInstanceOf(UnconvertibleLayerError);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('fails, without hanging, when the output cannot be written', async () => {
    const out = path.join(work, 'no', 'such', 'dir', 'layer.zst');
    await expect(writeZstdChunked(pieces(paxTar(), 4096), out)).rejects.toThrow(/ENOENT/);
  });

  it('writes the footer and annotations that agree with each other', async () => {
    const [layer, blob] = await convert(paxTar(), 'footer');
    const footer = blob.subarray(blob.length - 72);
    expect(footer.readUInt32LE(0)).toBe(0x184d2a50);
    expect(footer.readUInt32LE(4)).toBe(64);
    expect(footer.toString('latin1', 64)).toBe('GNUlInUx');
    const n = (i: number) => Number(footer.readBigUInt64LE(8 + 8 * i));
    const a = layer.annotations;
    expect(a['io.github.containers.zstd-chunked.manifest-position']).toBe(`${n(0)}:${n(1)}:${n(2)}:1`);
    expect(n(3)).toBe(1);
    expect(a['io.github.containers.zstd-chunked.tarsplit-position']).toBe(`${n(4)}:${n(5)}:${n(6)}`);
    const toc = blob.subarray(n(0), n(0) + n(1));
    expect(a['io.github.containers.zstd-chunked.manifest-checksum']).toBe(
      `sha256:${createHash('sha256').update(toc).digest('hex')}` as Digest,
    );
    // Both metadata frames sit in skippable frames right before their payloads.
    expect(blob.readUInt32LE(n(0) - 8)).toBe(0x184d2a50);
    expect(blob.readUInt32LE(n(0) - 4)).toBe(n(1));
    expect(blob.readUInt32LE(n(4) - 8)).toBe(0x184d2a50);
    expect(blob.readUInt32LE(n(4) - 4)).toBe(n(5));
    expect(n(4) + n(5)).toBe(blob.length - 72);
  });
});
