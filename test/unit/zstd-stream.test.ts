// The zstd decoder of full pulls: a zstd:chunked blob is one frame per file, and its output must
// not cost a buffer per frame (that was a 100k-file pull's allocation and GC, growing faster than
// its files). Counted, not timed: the distinct buffers behind the output.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { decompressor } from '../../src/formats/compression.js';
import { zstdBinding } from '../../src/formats/zstd-native.js';
import { pseudoRandomBytes } from '../harness/random.js';

/** One zstd frame per piece, as a zstd:chunked writer makes them (plus a skippable frame). */
function frames(pieces: Buffer[]): Buffer {
  const cctx = new (zstdBinding().CCtx)();
  const skippable = Buffer.alloc(8 + 4);
  skippable.writeUInt32LE(0x184d2a50, 0);
  skippable.writeUInt32LE(4, 4);
  const compressed = pieces.map((piece) => {
    const out = Buffer.alloc(piece.length + 64);
    return out.subarray(0, cctx.compress(out, piece, 3));
  });
  return Buffer.concat([...compressed, skippable]);
}

/** The decoder's output chunks as it pushed them ('data' events: a read() would join them). */
function decode(blob: Buffer, inputPiece: number): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for (let at = 0; at < blob.length; at += inputPiece) parts.push(blob.subarray(at, at + inputPiece));
  const out: Buffer[] = [];
  const decoder = Readable.from(parts).pipe(decompressor('zstd')!);
  decoder.on('data', (chunk: Buffer) => out.push(chunk));
  return new Promise((resolve, reject) => {
    decoder.on('end', () => resolve(out));
    decoder.on('error', reject);
  });
}

describe('zstd decompressor', () => {
  it('decodes many small frames into a few shared buffers, byte for byte', async () => {
    const bytes = pseudoRandomBytes(4000, 7);
    const pieces = Array.from({ length: 1500 }, (_, i) =>
      bytes.subarray(i % 500, (i % 500) + 200 + ((i * 37) % 3000)),
    );
    const expected = Buffer.concat(pieces);
    for (const inputPiece of [4096, 1 << 20]) {
      const out = await decode(frames(pieces), inputPiece);
      expect(Buffer.concat(out).equals(expected)).toBe(true);
      const buffers = new Set(out.map((b) => b.buffer)).size;
      // ~2.5 MB of output in 256 KiB buffers: about 11 of them, not one per frame (1500).
      expect(buffers).toBeLessThanOrEqual(Math.ceil(expected.length / (240 * 1024)) + 1);
    }
  });

  it('refuses a stream that ends inside a frame', async () => {
    const blob = frames([pseudoRandomBytes(5000, 1)]);
    await expect(decode(blob.subarray(0, blob.length - 20), 1000)).rejects.toThrow(
      /middle of compressed data frame/,
    );
  });
});
