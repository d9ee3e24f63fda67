/**
 * Streaming zstd decompression that fills whole output windows. zstd-napi's DecompressStream
 * allocates a fresh 128 KiB buffer for every call into the decoder and pushes the part it used;
 * the decoder returns at each frame's end, and zstd:chunked and eStargz write one frame per file,
 * so a layer of 100k small files became 100k pushes of a few KiB, each holding its own 128 KiB
 * buffer (measured: 260 MiB of buffers held and ten times gzip's CPU on a 120k-file layer). Here
 * frames are decoded back to back into one window, pushed only when full (or at the end): every
 * buffer handed on is as large as the memory it holds.
 */
import { type Duplex, Transform, type TransformCallback } from 'node:stream';
import { WORKER_FROM_BYTES } from './decode-worker.js';
import { ENDS_INSIDE_A_FRAME, ZstdWorkerDecompressStream } from './zstd-decode-worker.js';
import { zstdBinding } from './zstd-native.js';

/** A zstd decoder for a blob of `blobSize` bytes (0: unknown, decoded on this thread). */
export function zstdDecompressor(blobSize: number): Duplex {
  return blobSize >= WORKER_FROM_BYTES ? new ZstdWorkerDecompressStream() : new ZstdDecompressStream();
}

/** Output window: large enough for few pushes, small enough that a view of it pins little. */
const WINDOW = 256 * 1024;

export class ZstdDecompressStream extends Transform {
  private readonly dctx = new (zstdBinding().DCtx)();
  private window = Buffer.allocUnsafe(WINDOW);
  private filled = 0;
  private inFrame = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.decode(chunk);
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.inFrame) {
      done(new Error(ENDS_INSIDE_A_FRAME));
      return;
    }
    if (this.filled > 0) this.push(this.window.subarray(0, this.filled));
    done();
  }

  private decode(chunk: Buffer): void {
    let input = chunk;
    for (;;) {
      const [left, produced, consumed] = this.dctx.decompressStream(this.window.subarray(this.filled), input);
      // A call with nothing to do says what the next frame needs (9 bytes) even between frames.
      if (produced > 0 || consumed > 0) this.inFrame = left !== 0;
      this.filled += produced;
      input = input.subarray(consumed);
      if (this.filled === this.window.length) {
        // A full window: the decoder may hold more output for it even when the input is used up.
        this.push(this.window);
        this.window = Buffer.allocUnsafe(WINDOW);
        this.filled = 0;
        continue;
      }
      if (input.length === 0) return;
      if (produced === 0 && consumed === 0) throw new Error('zstd decoder made no progress');
    }
  }
}
