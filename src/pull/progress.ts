/** Progress events of a pull, for progress bars (the CLI) or nothing (the library default). */
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from '../digest/index.js';
import type { Method } from '../strategy/index.js';

export interface PullProgress {
  layerStart(index: number, digest: Digest, method: Method, totalBytes: number): void;
  /** Real bytes received from the source for this layer. */
  layerBytes(index: number, bytes: number): void;
  layerDone(index: number, ok: boolean): void;
}

export const SILENT_PROGRESS: PullProgress = {
  layerStart() {},
  layerBytes() {},
  layerDone() {},
};

/** Counts bytes flowing from the source: the report's bytesFetched and the progress bars. */
export class ByteCounter extends Transform {
  bytes = 0;

  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    done(null, chunk);
  }
}
