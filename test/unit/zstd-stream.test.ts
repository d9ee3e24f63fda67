// The layer decompressor for zstd (src/formats/zstd-stream.ts) on what zstd:chunked blobs are: one
// frame per file, skippable frames between them. It must give the same bytes as the whole-buffer
// decoder and hand on buffers about as large as the memory they hold.
import { describe, expect, it } from 'vitest';
import { zstd } from '../../src/formats/zstd-native.js';
import { ZstdDecompressStream } from '../../src/formats/zstd-stream.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { decodeInPieces, skippable } from '../harness/zstd-frames.js';

/** Feeds `blob` in pieces of `piece` bytes, as a network body arrives. */
const decode = (blob: Buffer, piece: number) => decodeInPieces(blob, piece, new ZstdDecompressStream());

describe('ZstdDecompressStream', () => {
  const files = Array.from({ length: 2000 }, (_, i) => pseudoRandomBytes(50 + (i % 300), i));
  const frames = files.map((f) => zstd().compress(f));
  const blob = Buffer.concat([
    ...frames,
    skippable(Buffer.from('{"toc":1}')),
    zstd().compress(Buffer.alloc(0)),
  ]);
  const plain = Buffer.concat(files);

  it('decodes a frame per file, across skippable frames, byte for byte', async () => {
    for (const piece of [13, 997, 64 * 1024, blob.length]) {
      expect(Buffer.concat(await decode(blob, piece)).equals(plain)).toBe(true);
    }
  });

  it('holds no more memory in the buffers it hands on than they carry', async () => {
    // zstd-napi's DecompressStream pushed a view of a fresh 128 KiB buffer per frame: 2000 frames
    // of ~200 bytes held 250 MiB. Each distinct ArrayBuffer is counted once.
    const parts = await decode(blob, 64 * 1024);
    const held = new Set(parts.map((p) => p.buffer));
    const heldBytes = [...held].reduce((sum, b) => sum + b.byteLength, 0);
    expect(heldBytes).toBeLessThanOrEqual(plain.length + 256 * 1024);
  });

  it('decodes output larger than its window', async () => {
    const big = pseudoRandomBytes(700 * 1024, 7);
    const out = await decode(zstd().compress(big), 4096);
    expect(Buffer.concat(out).equals(big)).toBe(true);
  });

  it('ends cleanly when the last frame ends exactly at the end of a window', async () => {
    // The decoder, asked once more with nothing left, answers that a next frame would need 9
    // bytes: that is not a frame cut short (a plain zstd layer of 256 KiB × n bytes was refused).
    const text = [Buffer.alloc(256 * 1024, 'line of text\n'), Buffer.alloc(256 * 1024, 'more text\n')];
    for (const piece of [100, 64 * 1024]) {
      const out = await decode(Buffer.concat(text.map((t) => zstd().compress(t))), piece);
      expect(Buffer.concat(out).equals(Buffer.concat(text))).toBe(true);
    }
  });

  it('refuses a stream that ends inside a frame', async () => {
    const frame = zstd().compress(pseudoRandomBytes(5000, 3));
    await expect(decode(frame.subarray(0, frame.length - 10), 100)).rejects.toThrow(/inside a frame/);
  });
});
