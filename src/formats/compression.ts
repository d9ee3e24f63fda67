/** Decompression streams for layer blobs, and the bound on what they may produce. */
import { type Duplex, Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import type { Compression } from '../manifest/media-types.js';
import { WORKER_FROM_BYTES } from './decode-worker.js';
import { GzipWorkerDecompressStream, gzipWorkerUsable } from './gzip-decode-worker.js';
import { zstdDecompressor } from './zstd-stream.js';

/**
 * A decompressing stream, or undefined for an uncompressed tar. With `blobSize`, a large blob is
 * decoded on a worker thread that also hashes what it decodes (a Duplex: gzip-decode-worker.ts,
 * zstd-decode-worker.ts; `isDigestingDecoder` in decode-worker.ts tells them apart).
 */
export function decompressor(compression: Compression): Transform | undefined;
export function decompressor(compression: Compression, blobSize: number): Duplex | undefined;
export function decompressor(compression: Compression, blobSize = 0): Duplex | undefined {
  switch (compression) {
    case 'gzip':
      // Below the threshold a worker's start (~30 ms of CPU, an isolate's memory) costs more than it saves.
      if (blobSize >= WORKER_FROM_BYTES && gzipWorkerUsable()) return new GzipWorkerDecompressStream();
      // Multi-member gzip (eStargz is one member per file) is decoded as one stream.
      // Large output chunks: fewer callbacks on the parsing thread (256 KiB: few callbacks, little memory held by views of them).
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      // Skippable frames (zstd:chunked's TOC, tar-split and footer) are skipped by the decoder.
      return zstdDecompressor(blobSize);
    case 'none':
      return undefined;
  }
}

/** `--max-layer-size` when not given: far above any real layer, far below a disk-filling bomb. */
export const DEFAULT_MAX_LAYER_SIZE = 64 * 1024 ** 3;

/** How many bytes a layer's tar may have, and what says so (for the message). */
export interface TarSizeBound {
  bytes: number;
  by: string;
}

/**
 * Passes a layer's tar on until it exceeds its bound, then fails: a few megabytes of gzip can
 * decompress to terabytes, and nothing past the bound is handed on to be written.
 */
export class TarSizeCap extends Transform {
  private seen = 0;

  /**
   * `chunkByChunk`: hands chunks on one by one, as they came (object mode, one buffered). A
   * byte-mode readable side joins whatever is buffered into a new buffer for an async iterator's
   * `read()`, so a reader that hands chunks back to their source (IngestOptions.release) could not.
   */
  constructor(
    private readonly bound: TarSizeBound,
    private readonly digest: Digest,
    options: { chunkByChunk?: boolean } = {},
  ) {
    super(options.chunkByChunk ? { readableObjectMode: true, readableHighWaterMark: 1 } : {});
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen <= this.bound.bytes) {
      done(null, chunk);
      return;
    }
    const { bytes, by } = this.bound;
    const message = `layer ${this.digest} decompresses to more than ${bytes} bytes, the limit set by ${by}`;
    done(new VerificationError(message, { digest: this.digest }));
  }
}
