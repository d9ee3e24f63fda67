// The worker-thread gzip decoder (src/formats/gzip-decode-worker.ts) must be node's gunzip moved to
// another thread: the same bytes from the same blob however it arrives (members across its input
// batches and output windows), the same refusals with the same messages, the digest of what it
// decoded, and a bound downstream that stops a bomb.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decompressor, TarSizeCap } from '../../src/formats/compression.js';
import {
  BATCH,
  CREDITS,
  isDigestingDecoder,
  WINDOW,
  WORKER_FROM_BYTES,
} from '../../src/formats/decode-worker.js';
import { GzipWorkerDecompressStream } from '../../src/formats/gzip-decode-worker.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { decodeInPieces as decode } from '../harness/zstd-frames.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const gunzip = () => zlib.createGunzip({ chunkSize: 256 * 1024 });

/** How a decoder fails on `blob`: the error's class and message. */
async function failure(blob: Buffer, decoder: Duplex): Promise<string> {
  try {
    await decode(blob, 4096, decoder);
  } catch (error) {
    return `${(error as Error).constructor.name}: ${(error as Error).message}`;
  }
  return 'no error';
}

describe('GzipWorkerDecompressStream', () => {
  // ~6.7 MB of text and random bytes in ~2.8 MB of gzip, as several members (eStargz writes one
  // per file): more than two of the worker's 1 MiB input batches, so members straddle batches.
  const parts = Array.from({ length: 40 }, (_, i) =>
    i % 3 === 0 ? pseudoRandomBytes(200_000 + i * 997, i) : Buffer.alloc(100_000 + i * 1000, `line ${i}\n`),
  );
  const plain = Buffer.concat(parts);
  const blob = Buffer.concat([
    zlib.gzipSync(Buffer.concat(parts.slice(0, 25))),
    ...parts.slice(25).map((p) => zlib.gzipSync(p)),
  ]);

  it('is a blob of several members over several input batches', () => {
    expect(blob.length).toBeGreaterThan(2 * BATCH);
    expect(blob.subarray(10).indexOf(Buffer.from([0x1f, 0x8b, 8]))).toBeGreaterThan(BATCH);
  });

  it("gives node's gunzip's bytes, in whole windows, however the blob arrives, and their digest", async () => {
    for (const piece of [997, 64 * 1024, 1536 * 1024, blob.length]) {
      const decoder = new GzipWorkerDecompressStream();
      const out = await decode(blob, piece, decoder);
      expect(Buffer.concat(out).equals(plain), `pieces of ${piece}`).toBe(true);
      expect(out.slice(0, -1).every((b) => b.length === WINDOW)).toBe(true);
      // The worker's digest of what it decoded: a layer's DiffID, so the ingest need not hash it.
      expect(await decoder.digested()).toEqual({ diffID: sha256(plain), bytes: plain.length });
    }
  });

  it('passes over zeros after the last member, as node does', async () => {
    const padded = Buffer.concat([blob, Buffer.alloc(5000)]);
    expect(Buffer.concat(await decode(padded, 64 * 1024, gunzip())).equals(plain)).toBe(true);
    const out = await decode(padded, 64 * 1024, new GzipWorkerDecompressStream());
    expect(Buffer.concat(out).equals(plain)).toBe(true);
  });

  const damaged: Array<[string, (b: Buffer) => Buffer]> = [
    ['cut short', (b) => b.subarray(0, b.length - 300)],
    ['cut inside its trailer', (b) => b.subarray(0, b.length - 3)],
    ['with a byte of deflate data changed', (b) => flip(b, 1_200_000)],
    ['with a wrong CRC-32', (b) => flip(b, b.length - 6)],
    ['followed by garbage', (b) => Buffer.concat([b, Buffer.from('not gzip')])],
    ['not gzip at all', () => Buffer.from('plain text, not a gzip stream')],
    ['empty', () => Buffer.alloc(0)],
  ];
  for (const [what, damage] of damaged) {
    it(`refuses a stream ${what} with node's gunzip's error`, async () => {
      const bad = damage(blob);
      const expected = await failure(bad, gunzip());
      expect(expected).not.toBe('no error');
      expect(await failure(bad, new GzipWorkerDecompressStream())).toBe(`Error: ${expected.split(': ')[1]}`);
    });
  }

  it('decodes several streams at once on one worker, each to its own bytes, a failure its own', async () => {
    const others = [0, 1].map((n) => Buffer.concat(parts.slice(n * 10, n * 10 + 15)));
    const cut = blob.subarray(0, blob.length - 300);
    const results = await Promise.allSettled([
      decode(blob, 64 * 1024, new GzipWorkerDecompressStream()),
      decode(cut, 50_000, new GzipWorkerDecompressStream()),
      ...others.map((o) => decode(zlib.gzipSync(o), 30_000, new GzipWorkerDecompressStream())),
    ]);
    const value = (i: number) => Buffer.concat((results[i] as PromiseFulfilledResult<Buffer[]>).value);
    expect(value(0).equals(plain)).toBe(true);
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { message: 'unexpected end of file' } });
    expect(value(2).equals(others[0]!)).toBe(true);
    expect(value(3).equals(others[1]!)).toBe(true);
    // The worker ended with the last stream, and a new stream starts another.
    const again = new GzipWorkerDecompressStream();
    expect(Buffer.concat(await decode(blob, blob.length, again)).equals(plain)).toBe(true);
    expect((await again.digested()).diffID).toBe(sha256(plain));
  });

  it("decodes a stream whose first batch reaches the worker after a later stream's", async () => {
    const first = new GzipWorkerDecompressStream();
    const second = new GzipWorkerDecompressStream();
    // The second stream is fed and decoded to its end before the first says anything.
    expect(Buffer.concat(await decode(blob, 64 * 1024, second)).equals(plain)).toBe(true);
    expect(Buffer.concat(await decode(blob, 64 * 1024, first)).equals(plain)).toBe(true);
    expect((await first.digested()).diffID).toBe(sha256(plain));
  });

  // 4 GiB of zeros in ~4 MB of gzip.
  const member = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024));
  const bomb = Buffer.concat(Array.from({ length: 64 }, () => member));

  it('decodes no further ahead of its consumer than its credits allow', async () => {
    const decoder = new GzipWorkerDecompressStream();
    decoder.end(bomb);
    await new Promise((resolve) => decoder.once('readable', resolve));
    await decoder.roundTrip();
    expect(decoder.readableLength, 'before reading').toBe(CREDITS * WINDOW);
    for (let round = 0; round < 3; round++) {
      while (decoder.readableLength > 0) expect(decoder.read(WINDOW)?.length).toBe(WINDOW);
      await decoder.roundTrip();
      expect(decoder.readableLength).toBeGreaterThan(0);
      expect(decoder.readableLength).toBeLessThanOrEqual(CREDITS * WINDOW);
    }
    decoder.destroy();
  });

  it('stops a bomb at the bound downstream', async () => {
    const cap = new TarSizeCap({ bytes: 10 * 1024 * 1024, by: 'a test' }, 'sha256:0');
    await expect(decode(bomb, 64 * 1024, new GzipWorkerDecompressStream(), cap)).rejects.toThrow(
      'decompresses to more than 10485760 bytes, the limit set by a test',
    );
  });

  it('is the decoder for large gzip blobs only: a worker costs more than it saves on small ones', () => {
    const large = decompressor('gzip', WORKER_FROM_BYTES);
    expect(large).toBeInstanceOf(GzipWorkerDecompressStream);
    expect(isDigestingDecoder(large)).toBe(true);
    large?.destroy();
    for (const small of [decompressor('gzip', WORKER_FROM_BYTES - 1), decompressor('gzip')]) {
      expect(small).toBeInstanceOf(zlib.Gunzip);
      expect(isDigestingDecoder(small)).toBe(false);
    }
  });
});

function flip(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at]! ^= 0xff;
  return copy;
}
