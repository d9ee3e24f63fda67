// WorkerDecompressStream.release (src/formats/decode-worker.ts): a window the consumer hands back
// carries a later window's bytes, so it must be taken back only once, and only if the stream
// lent it. Under a slow consumer that releases every window (twice, and a buffer of its own
// besides) the bytes out must still be the synchronous decoder's.
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { TarSizeCap } from '../../src/formats/compression.js';
import { WINDOW } from '../../src/formats/decode-worker.js';
import { ZstdWorkerDecompressStream } from '../../src/formats/zstd-decode-worker.js';
import { zstd } from '../../src/formats/zstd-native.js';
import { pseudoRandomBytes } from '../harness/random.js';

describe('WorkerDecompressStream.release', () => {
  it('reuses only windows it lent and each once: the bytes out are the input, under a slow consumer', async () => {
    const plain = Buffer.concat(
      Array.from({ length: 40 }, (_, i) => pseudoRandomBytes(60_000 + ((i * 7919) % 50_000), i)),
    );
    const blob = zstd().compress(plain);
    const decoder = new ZstdWorkerDecompressStream();
    Readable.from([blob.subarray(0, 100_000), blob.subarray(100_000)]).pipe(decoder);
    // Windows one by one, as the decoder pushed them (a byte-mode reader would join them).
    const windows = decoder.pipe(new PassThrough({ readableObjectMode: true, readableHighWaterMark: 1 }));
    const out: Buffer[] = [];
    let reused = 0;
    const seen = new Set<ArrayBufferLike>();
    for await (const chunk of windows as AsyncIterable<Buffer>) {
      if (seen.has(chunk.buffer)) reused++;
      seen.add(chunk.buffer);
      out.push(Buffer.from(chunk));
      // A slow consumer: the worker fills its credits meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 2));
      decoder.release(chunk);
      decoder.release(chunk);
      decoder.release(Buffer.allocUnsafeSlow(WINDOW));
    }
    expect(Buffer.concat(out).equals(plain)).toBe(true);
    expect(reused).toBeGreaterThan(0);
  });
});

describe('TarSizeCap chunk by chunk', () => {
  it('hands each chunk on as it came, never joined with the next, to a slow async reader', async () => {
    const written = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000 + i, i));
    const cap = new TarSizeCap({ bytes: 1 << 20, by: 'test' }, 'sha256:00' as Digest, { chunkByChunk: true });
    Readable.from(written).pipe(cap);
    const read: Buffer[] = [];
    for await (const chunk of cap as AsyncIterable<Buffer>) {
      read.push(chunk);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // The same buffers: the reader may hand each back to the stream's source (IngestOptions.release).
    expect(read.length).toBe(written.length);
    expect(read.map((chunk) => chunk.buffer)).toEqual(written.map((chunk) => chunk.buffer));
  });
});
