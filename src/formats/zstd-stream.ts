/**
 * A zstd decompressing transform that fills one output buffer across calls and frames.
 *
 * zstd-napi's DecompressStream allocates a fresh 128 KiB buffer for every call into the decoder,
 * and the decoder returns at every frame end. A zstd:chunked blob is one frame per file (and per
 * chunk), so a layer of 100k small files cost 100k such buffers, each kept alive by the few KiB of
 * file it holds until the pack writer had written them: allocation and garbage collection were
 * two thirds of a full pull's CPU time, and grew faster than the files (more live external memory,
 * longer collections). Here output goes into a 256 KiB buffer until it is nearly full, and what
 * each call produced is handed on as a view of it: one allocation per 256 KiB of tar, whatever
 * the number of frames. Bytes once handed on are never written again.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { zstdBinding } from './zstd-native.js';

/** Output is decoded into buffers of this size... */
const OUT_BYTES = 256 * 1024;
/** ...until fewer than this many bytes are left in one: then a fresh buffer is started. */
const MIN_ROOM = 16 * 1024;

export class ZstdDecompressor extends Transform {
  private readonly dctx = new (zstdBinding().DCtx)();
  private out = Buffer.allocUnsafe(OUT_BYTES);
  private used = 0;
  /** Inside a frame whose end has not arrived yet (the input must not end here). */
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
    done(this.inFrame ? new Error('Stream ended in middle of compressed data frame') : null);
  }

  private decode(input: Buffer): void {
    let src = input;
    let start = this.used;
    for (;;) {
      if (this.out.length - this.used < MIN_ROOM) {
        if (this.used > start) this.push(this.out.subarray(start, this.used));
        this.out = Buffer.allocUnsafe(OUT_BYTES);
        this.used = 0;
        start = 0;
      }
      const room = this.out.length - this.used;
      const [left, produced, consumed] = this.dctx.decompressStream(this.out.subarray(this.used), src);
      this.used += produced;
      src = src.subarray(consumed);
      // Done with this input once it is consumed and the decoder holds nothing more back (it
      // did not fill the room it was given, or it ended a frame).
      if (src.length === 0 && (produced < room || left === 0)) {
        this.inFrame = left !== 0;
        break;
      }
    }
    if (this.used > start) this.push(this.out.subarray(start, this.used));
  }
}
