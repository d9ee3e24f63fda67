// The worker-thread zstd decoder (src/formats/zstd-decode-worker.ts) must be the synchronous
// decoder (src/formats/zstd-stream.ts) moved to another thread: the same bytes from the same blob
// however it arrives (frames across its input batches and output windows), the same refusals, and
// a bound downstream that stops a bomb.
import { createHash } from 'node:crypto';
import { type Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { TarSizeCap } from '../../src/formats/compression.js';
import { CREDITS, WINDOW, WORKER_FROM_BYTES } from '../../src/formats/decode-worker.js';
import { ZstdWorkerDecompressStream } from '../../src/formats/zstd-decode-worker.js';
import { zstd } from '../../src/formats/zstd-native.js';
import { ZstdDecompressStream, zstdDecompressor } from '../../src/formats/zstd-stream.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { decodeInPieces, skippable } from '../harness/zstd-frames.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const decode = decodeInPieces;

/** How a decoder fails on `blob`: the error's class and message. */
async function failure(blob: Buffer, decoder: Duplex): Promise<string> {
  try {
    await decode(blob, 4096, decoder);
  } catch (error) {
    return `${(error as Error).constructor.name}: ${(error as Error).message}`;
  }
  return 'no error';
}

describe('ZstdWorkerDecompressStream', () => {
  // ~1.6 MB of incompressible frames: more than three of the worker's 512 KiB input batches, so
  // frames straddle batches, and more than six output windows.
  const files = Array.from({ length: 6000 }, (_, i) => pseudoRandomBytes(20 + ((i * 37) % 500), i));
  const blob = Buffer.concat([
    ...files.slice(0, 3000).map((f) => zstd().compress(f)),
    skippable(Buffer.from('{"toc":1}')),
    ...files.slice(3000).map((f) => zstd().compress(f)),
    zstd().compress(Buffer.alloc(0)),
  ]);
  const plain = Buffer.concat(files);

  it('gives what the synchronous decoder gives, in windows of the same size, however the blob arrives', async () => {
    const expected = await decode(blob, 64 * 1024, new ZstdDecompressStream());
    expect(Buffer.concat(expected).equals(plain)).toBe(true);
    for (const piece of [997, 64 * 1024, 700 * 1024, blob.length]) {
      const decoder = new ZstdWorkerDecompressStream();
      const out = await decode(blob, piece, decoder);
      expect(Buffer.concat(out).equals(plain), `pieces of ${piece}`).toBe(true);
      // The worker's digest of what it decoded: a layer's DiffID, so the ingest need not hash it.
      expect(await decoder.digested()).toEqual({ diffID: sha256(plain), bytes: plain.length });
      expect(out.map((b) => b.length)).toEqual(expected.map((b) => b.length));
      expect(out.slice(0, -1).every((b) => b.length === WINDOW)).toBe(true);
    }
  });

  it('feeds a consumer that reads everything buffered at once (an async iterator)', async () => {
    // read() with no size takes the whole buffer; a decoder that counted those windows as still
    // unread when asked for more would give no credit and wait for ever.
    // Text-like frames that decode to many windows per input batch.
    const text = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, `line ${i} of text\n`));
    const compressed = Buffer.concat(text.map((t) => zstd().compress(t)));
    const out: Buffer[] = [];
    await pipeline(Readable.from([compressed]), new ZstdWorkerDecompressStream(), async (tar) => {
      for await (const part of tar) out.push(part as Buffer);
    });
    expect(Buffer.concat(out).equals(Buffer.concat(text))).toBe(true);
  });

  it('decodes one frame larger than many windows', async () => {
    const big = pseudoRandomBytes(3 * 1024 * 1024 + 17, 7);
    const out = await decode(zstd().compress(big), 100_000, new ZstdWorkerDecompressStream());
    expect(Buffer.concat(out).equals(big)).toBe(true);
  });

  it('refuses a stream that ends inside a frame as the synchronous decoder does', async () => {
    const cut = blob.subarray(0, blob.length - 300);
    const expected = await failure(cut, new ZstdDecompressStream());
    expect(expected).toMatch(/inside a frame/);
    expect(await failure(cut, new ZstdWorkerDecompressStream())).toBe(expected);
  });

  it("refuses a corrupt frame with the synchronous decoder's error", async () => {
    const corrupt = Buffer.from(blob);
    // Past the first input batch: the frame header's magic number of a frame there, broken.
    const at = corrupt.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 600 * 1024);
    corrupt[at + 1] = 0;
    const expected = await failure(corrupt, new ZstdDecompressStream());
    expect(expected).not.toBe('no error');
    expect(await failure(corrupt, new ZstdWorkerDecompressStream())).toBe(expected);
  });

  // 4 GiB of zeros in a few hundred kB of zstd frames.
  const frame = zstd().compress(Buffer.alloc(64 * 1024 * 1024));
  const bomb = Buffer.concat(Array.from({ length: 64 }, () => frame));

  it('decodes no further ahead of its consumer than its credits allow', async () => {
    const decoder = new ZstdWorkerDecompressStream();
    decoder.end(bomb);
    await new Promise((resolve) => decoder.once('readable', resolve));
    await decoder.roundTrip();
    expect(decoder.readableLength, 'before reading').toBe(CREDITS * WINDOW);
    for (let round = 0; round < 3; round++) {
      while (decoder.readableLength > 0) expect(decoder.read(WINDOW)?.length).toBe(WINDOW);
      await decoder.roundTrip();
      // Decoding went on, no further than the credits (the one being read counted among them).
      expect(decoder.readableLength).toBeGreaterThan(0);
      expect(decoder.readableLength).toBeLessThanOrEqual(CREDITS * WINDOW);
    }
    decoder.destroy();
  });

  it('stops a bomb at the bound downstream', async () => {
    const cap = new TarSizeCap({ bytes: 10 * 1024 * 1024, by: 'a test' }, 'sha256:0');
    await expect(decode(bomb, 64 * 1024, new ZstdWorkerDecompressStream(), cap)).rejects.toThrow(
      'decompresses to more than 10485760 bytes, the limit set by a test',
    );
  });

  it('decodes streams open at once on one shared worker, each to its own bytes and digest', async () => {
    const otherFiles = Array.from({ length: 2000 }, (_, i) =>
      pseudoRandomBytes(100 + ((i * 53) % 900), i + 9000),
    );
    const other = Buffer.concat(otherFiles.map((f) => zstd().compress(f)));
    const a = new ZstdWorkerDecompressStream();
    const b = new ZstdWorkerDecompressStream();
    expect(a.workerThreadId).toBeTypeOf('number');
    expect(b.workerThreadId).toBe(a.workerThreadId);
    // Fed in different pieces, so their messages interleave on the worker.
    const [outA, outB] = await Promise.all([decode(blob, 997, a), decode(other, 64 * 1024, b)]);
    expect(Buffer.concat(outA).equals(plain)).toBe(true);
    expect(Buffer.concat(outB).equals(Buffer.concat(otherFiles))).toBe(true);
    expect(await a.digested()).toEqual({ diffID: sha256(plain), bytes: plain.length });
    expect((await b.digested()).diffID).toBe(sha256(Buffer.concat(otherFiles)));
  });

  it('fails only the stream with a corrupt frame, not the others sharing its worker', async () => {
    const corrupt = Buffer.from(blob);
    corrupt[corrupt.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 600 * 1024) + 1] = 0;
    const expected = await failure(corrupt, new ZstdDecompressStream());
    const good = new ZstdWorkerDecompressStream();
    const bad = new ZstdWorkerDecompressStream();
    expect(bad.workerThreadId).toBe(good.workerThreadId);
    const [goodOut, badFailure] = await Promise.all([decode(blob, 4096, good), failure(corrupt, bad)]);
    expect(badFailure).toBe(expected);
    expect(Buffer.concat(goodOut).equals(plain)).toBe(true);
  });

  it('goes on decoding the other streams when one is destroyed half-way', async () => {
    const stopped = new ZstdWorkerDecompressStream();
    const going = new ZstdWorkerDecompressStream();
    stopped.write(blob.subarray(0, 300 * 1024));
    await stopped.roundTrip();
    stopped.destroy();
    expect(Buffer.concat(await decode(blob, 8192, going)).equals(plain)).toBe(true);
  });

  it('is the decoder for large blobs only: a worker costs more than it saves on small ones', () => {
    expect(zstdDecompressor(WORKER_FROM_BYTES)).toBeInstanceOf(ZstdWorkerDecompressStream);
    expect(zstdDecompressor(WORKER_FROM_BYTES - 1)).toBeInstanceOf(ZstdDecompressStream);
    expect(zstdDecompressor(0)).toBeInstanceOf(ZstdDecompressStream);
  });
});
