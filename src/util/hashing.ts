/**
 * Hashing a layer's tar stream: the DiffID over every byte, and a digest per regular file, in one
 * pass. (A worker thread for this was measured for full pulls: on two cores it competed with
 * zlib's thread pool and cost more time and memory than it saved, so hashing stays on the parsing
 * thread. A partial pull's rebuild decompresses nothing and hashes on a worker: rebuild-hasher.ts.
 * A large gzip or zstd layer decoded on a worker is hashed there as it is decoded, where the bytes
 * already are: gzip-decode-worker.ts, zstd-decode-worker.ts. Both give the DiffID as
 * `digestedBySource`: then only files are hashed here.)
 */
import { createHash, type Hash } from 'node:crypto';
import type { Digest } from '../digest/index.js';

export class LayerHasher {
  /** `hashesStream` false: the stream's source hashes the DiffID (a worker), this hasher only files. */
  constructor(private readonly hashesStream = true) {}

  private readonly diff = createHash('sha256');
  private readonly files = new Map<number, Hash>();
  private next = 0;
  private total = 0;

  /** Bytes that count for the DiffID only (headers, padding, content vouched for elsewhere). */
  raw(bytes: Uint8Array): void {
    if (this.hashesStream) this.diff.update(bytes);
    this.total += bytes.length;
  }

  /** Starts a file; its content goes through `data`. */
  begin(): number {
    this.files.set(this.next, createHash('sha256'));
    return this.next++;
  }

  /** File content, which counts for the DiffID too. */
  data(id: number, bytes: Uint8Array): void {
    if (this.hashesStream) this.diff.update(bytes);
    this.total += bytes.length;
    this.files.get(id)?.update(bytes);
  }

  end(id: number): Digest {
    const hash = this.files.get(id)!;
    this.files.delete(id);
    return `sha256:${hash.digest('hex')}`;
  }

  /** The DiffID and the tar's size, once every byte has been given. */
  finish(): { diffID: Digest; bytes: number } {
    return { diffID: `sha256:${this.diff.digest('hex')}`, bytes: this.total };
  }
}
