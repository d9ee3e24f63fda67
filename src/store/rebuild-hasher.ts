/**
 * The DiffID of a layer rebuilt from stored objects, hashed on a second thread. A partial pull
 * proves its DiffID by rebuilding the whole tar, and reading and hashing every content byte is
 * most of that work; the parsing thread only needs the headers, since the contents are objects it
 * already holds by digest. So it posts the headers' bytes and the objects' locations here, and the
 * worker reads and hashes while the parsing thread writes the layer's records.
 */
import fs from 'node:fs';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { WorkerHandle } from '../util/worker-handle.js';
import { type ObjectLocation, openObjectFile } from './packs.js';

/** Raw bytes are copied into batches of this size. */
const BATCH_BYTES = 1024 * 1024;
/**
 * A batch is posted once it stands for this many bytes of stream (raw and objects): often enough
 * that the worker keeps pace, rarely enough that posting costs little.
 */
const POST_BYTES = 8 * 1024 * 1024;
/** The parsing thread waits while more than this many bytes (raw and object) are not yet hashed. */
const MAX_IN_FLIGHT = 64 * 1024 * 1024;
/** Room for this many ops in a fresh batch (it grows when a batch needs more). */
const OPS_START = 16 * 1024;
/** In a batch's op list: a positive number is that many raw bytes; this starts an object. */
const OBJECT = -1;

// CommonJS source run with eval, so it works the same under tsc output and vitest.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const WINDOW = 1024 * 1024;
const diffID = createHash('sha256');
let total = 0;
// Small objects sit next to each other in a pack: one read brings in a window of them. A window
// per file, as a rebuild goes back and forth between the packs of older and newer layers. Each
// window's buffer is refilled in place and large objects stream through one scratch buffer: a new
// buffer per read would leave garbage outside the worker's heap, which its GC notices late (a
// partial pull of 9k files grew by ~150 MB of it).
const windows = new Map();
const scratch = Buffer.allocUnsafe(WINDOW);
function update(bytes) {
  diffID.update(bytes);
  total += bytes.length;
}
function readAt(fd, buffer, length, position, what) {
  const read = fs.readSync(fd, buffer, 0, length, position);
  if (read === 0) throw new Error(what + ': object truncated at offset ' + position + ' (store damaged?)');
  return read;
}
function object(fd, offset, size, what) {
  let window = windows.get(fd);
  const from = window ? offset - window.start : -1;
  if (from >= 0 && from + size <= window.length) {
    update(window.buffer.subarray(from, from + size));
    return;
  }
  if (size <= WINDOW) {
    if (!window) {
      window = { buffer: Buffer.allocUnsafe(WINDOW), start: 0, length: 0 };
      windows.set(fd, window);
    }
    let filled = 0;
    while (filled < size) filled += readAt(fd, window.buffer.subarray(filled), WINDOW - filled, offset + filled, what);
    window.start = offset;
    window.length = filled;
    update(window.buffer.subarray(0, size));
    return;
  }
  for (let done = 0; done < size; ) {
    const read = readAt(fd, scratch, Math.min(WINDOW, size - done), offset + done, what);
    update(scratch.subarray(0, read));
    done += read;
  }
}
// The files' names, for errors: each batch brings those opened since the one before.
const names = [];
function batch({ data, ops, count, newNames }) {
  for (const name of newNames) names.push(name);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (ops[i] > 0) {
      update(data.subarray(at, at + ops[i]));
      at += ops[i];
    } else {
      object(ops[i + 1], ops[i + 2], ops[i + 3], names[ops[i + 4]]);
      i += 4;
    }
  }
}
parentPort.on('message', (message) => {
  try {
    if (message.kind === 'batch') {
      batch(message);
      parentPort.postMessage({ kind: 'ack', bytes: message.bytes });
    } else parentPort.postMessage({ kind: 'done', diffID: 'sha256:' + diffID.digest('hex'), bytes: total });
  } catch (error) {
    parentPort.postMessage({ kind: 'error', message: String((error && error.message) || error) });
  }
});
`;

export interface RebuiltDigest {
  diffID: Digest;
  bytes: number;
}

type HasherMessage =
  | { kind: 'ack'; bytes: number }
  | { kind: 'done'; diffID: Digest; bytes: number }
  | { kind: 'error'; message: string };

export class RebuildHasher {
  private readonly worker: WorkerHandle<HasherMessage>;
  /** Opened here, not in the worker: terminating a worker does not close the files it opened. */
  private readonly descriptors = new Map<string, { fd: number; name: number }>();
  private readonly names: string[] = [];
  private namesSent = 0;
  private data = newBatch();
  private used = 0;
  /** The batch's op list (raw lengths, objects): a typed array, transferred rather than cloned. */
  private ops = new Float64Array(OPS_START);
  private opCount = 0;
  private batchBytes = 0;
  private inFlight = 0;
  private result: RebuiltDigest | undefined;

  constructor() {
    const onMessage = (message: HasherMessage) => {
      if (message.kind === 'ack') this.inFlight -= message.bytes;
      else if (message.kind === 'done') this.result = { diffID: message.diffID, bytes: message.bytes };
      else throw new VerificationError(message.message);
    };
    this.worker = new WorkerHandle(WORKER_SOURCE, {}, onMessage, 'the layer hashing worker');
  }

  /** Bytes of the stream itself (headers, padding). */
  raw(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      if (this.used === this.data.length) this.post();
      const n = Math.min(bytes.length - at, this.data.length - this.used);
      this.data.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      this.room(1);
      this.ops[this.opCount++] = n;
      this.batchBytes += n;
      at += n;
    }
  }

  /** A stored object's bytes, read and hashed by the worker in stream order. */
  object(location: ObjectLocation): void {
    const { fd, name } = this.descriptor(location.path);
    this.room(5);
    const ops = this.ops;
    let at = this.opCount;
    ops[at++] = OBJECT;
    ops[at++] = fd;
    ops[at++] = location.offset;
    ops[at++] = location.size;
    ops[at++] = name;
    this.opCount = at;
    this.batchBytes += location.size;
    if (this.batchBytes >= POST_BYTES) this.post();
  }

  /**
   * Resolves once the worker has caught up enough for the caller to go on (bounded memory); throws
   * as soon as the worker has failed, so the rebuild stops early.
   */
  pace(): Promise<void> | undefined {
    this.worker.check();
    if (this.inFlight + this.batchBytes <= MAX_IN_FLIGHT) return undefined;
    this.post();
    return this.worker.until(() => this.inFlight <= MAX_IN_FLIGHT / 2);
  }

  /** The digest and size of everything given, in order. */
  async finish(): Promise<RebuiltDigest> {
    this.post();
    this.worker.post({ kind: 'finish' });
    await this.worker.until(() => this.result !== undefined);
    await this.stop();
    return this.result!;
  }

  /** Ends the worker and closes the files (after finish, or to abandon the rebuild). */
  async stop(): Promise<void> {
    if (!(await this.worker.stop())) return;
    for (const { fd } of this.descriptors.values()) fs.closeSync(fd);
    this.descriptors.clear();
  }

  private room(ops: number): void {
    if (this.opCount + ops <= this.ops.length) return;
    const bigger = new Float64Array(2 * this.ops.length);
    bigger.set(this.ops);
    this.ops = bigger;
  }

  private descriptor(file: string): { fd: number; name: number } {
    let found = this.descriptors.get(file);
    if (!found) {
      found = { fd: openObjectFile(file), name: this.names.push(file) - 1 };
      this.descriptors.set(file, found);
    }
    return found;
  }

  private post(): void {
    if (this.opCount === 0) return;
    const data = this.data.subarray(0, this.used);
    // Only the names the worker has not had: the whole list per batch was a clone of every
    // loose object's path per 8 MiB of stream.
    const newNames = this.names.slice(this.namesSent);
    this.namesSent = this.names.length;
    const message = { kind: 'batch', data, ops: this.ops, count: this.opCount, newNames };
    this.worker.post({ ...message, bytes: this.batchBytes }, [this.data.buffer, this.ops.buffer]);
    this.inFlight += this.batchBytes;
    this.data = newBatch();
    this.used = 0;
    this.ops = new Float64Array(OPS_START);
    this.opCount = 0;
    this.batchBytes = 0;
  }
}

/** Not zero-filled and not from the shared pool: every byte is written before use, and it is transferred. */
function newBatch(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.allocUnsafeSlow(BATCH_BYTES).buffer as ArrayBuffer, 0, BATCH_BYTES);
}
