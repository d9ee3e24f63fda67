/**
 * One zstd frame compressed in memory as its content is written, with the low-level streaming API
 * (ZSTD_compressStream2) writing straight into output buffers: zstd:chunked's TOC and tar-split
 * each grow entry by entry this way, so their uncompressed text never has to exist whole. (The
 * blob body, many frames, goes through blob-worker.ts.)
 */
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { zstdBinding } from './zstd-native.js';

const OUTPUT_BUFFER = 256 * 1024;
const EMPTY = Buffer.alloc(0);

export const SKIPPABLE_MAGIC = 0x184d2a50;
export const SKIPPABLE_HEADER = 8;

export class MemoryFrame {
  private readonly cctx = new (zstdBinding().CCtx)();
  private readonly parts: Buffer[] = [];
  private buffer = Buffer.allocUnsafe(OUTPUT_BUFFER);
  private used = 0;
  /** Bytes written into the frame so far. */
  uncompressed = 0;

  constructor(level: number) {
    this.cctx.setParameter(zstdBinding().CParameter.compressionLevel, level);
    // Per-frame checksums, as containers/storage's encoder writes them: `zstd -d` verifies them.
    this.cctx.setParameter(zstdBinding().CParameter.checksumFlag, 1);
  }

  write(data: Uint8Array): void {
    this.uncompressed += data.length;
    let consumed = 0;
    while (consumed < data.length) {
      const [, produced, used] = this.step(data.subarray(consumed), zstdBinding().EndDirective.continue);
      consumed += used;
      this.used += produced;
    }
  }

  /** Ends the frame and returns it, compressed. */
  finish(): Buffer {
    let remaining: number;
    do {
      const [left, produced] = this.step(EMPTY, zstdBinding().EndDirective.end);
      this.used += produced;
      remaining = left;
    } while (remaining !== 0);
    this.parts.push(this.buffer.subarray(0, this.used));
    return Buffer.concat(this.parts);
  }

  private step(data: Uint8Array, directive: ZstdBinding.EndDirective): [number, number, number] {
    if (this.used === this.buffer.length) {
      this.parts.push(this.buffer);
      this.buffer = Buffer.allocUnsafe(OUTPUT_BUFFER);
      this.used = 0;
    }
    return this.cctx.compressStream2(this.buffer.subarray(this.used), data, directive);
  }
}

/** A skippable frame's 8-byte header: magic, then the payload length (both little-endian). */
export function skippableHeader(payloadLength: number): Buffer {
  const header = Buffer.allocUnsafe(SKIPPABLE_HEADER);
  header.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  header.writeUInt32LE(payloadLength, 4);
  return header;
}
