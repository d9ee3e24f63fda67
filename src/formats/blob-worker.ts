/**
 * The zstd:chunked blob body, compressed and written by a worker thread. Compression is about a
 * third of a conversion's CPU time and the per-byte work (tar parsing, rolling sum, CRC, hashes)
 * most of the rest, so running them on two threads nearly halves the wall time on a multi-core
 * machine. The main thread only copies bytes into batches and marks frame ends; the worker
 * compresses, writes, hashes the output and the input (the DiffID), and reports where each frame
 * ended, which the TOC needs, a batch at a time. In-flight bytes are capped, so
 * memory stays bounded however fast the input arrives.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Digest } from '../digest/index.js';
import { WorkerHandle } from '../util/worker-handle.js';

/** Batches are posted once this full (or when the caller waits). */
const BATCH_BYTES = 1024 * 1024;
/** The main thread waits while more than this many bytes are posted but not yet compressed. */
const MAX_IN_FLIGHT = 8 * 1024 * 1024;
/** In a batch's op list: a positive number is that many data bytes; this marks a frame end. */
const END_FRAME = -1;

// The worker runs as CommonJS source (eval), so it works the same under tsc output and vitest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const binding = require(workerData.bindingPath);
const cctx = new binding.CCtx();
cctx.setParameter(binding.CParameter.compressionLevel, workerData.level);
cctx.setParameter(binding.CParameter.checksumFlag, 1);
const fd = workerData.fd;
const hash = createHash('sha256');
// Everything the frames hold, in order, is the uncompressed tar: its digest is the DiffID.
const diffID = createHash('sha256');
const EMPTY = Buffer.alloc(0);
let out = Buffer.allocUnsafe(4 * 1024 * 1024);
let used = 0;
let offset = 0;
function flush() {
  if (used === 0) return;
  let written = 0;
  while (written < used) written += fs.writeSync(fd, out, written, used - written);
  hash.update(out.subarray(0, used));
  used = 0;
}
function room() { if (out.length - used < 64 * 1024) flush(); }
function compress(src, directive) {
  let consumed = 0;
  let left;
  do {
    room();
    const [remaining, produced, took] = cctx.compressStream2(out.subarray(used), src.subarray(consumed), directive);
    used += produced;
    offset += produced;
    consumed += took;
    left = remaining;
  } while (consumed < src.length || (directive === binding.EndDirective.end && left !== 0));
}
function batch({ data, ops }) {
  diffID.update(data);
  const ends = [];
  let at = 0;
  for (const op of ops) {
    if (op === ${END_FRAME}) {
      compress(EMPTY, binding.EndDirective.end);
      ends.push(offset);
    } else {
      compress(data.subarray(at, at + op), binding.EndDirective.continue);
      at += op;
    }
  }
  return ends;
}
function finish(tail) {
  flush();
  for (const part of tail) {
    let written = 0;
    while (written < part.length) written += fs.writeSync(fd, part, written, part.length - written);
    hash.update(part);
    offset += part.length;
  }
  return { size: offset, digest: 'sha256:' + hash.digest('hex'), diffID: 'sha256:' + diffID.digest('hex') };
}
parentPort.on('message', (message) => {
  try {
    if (message.kind === 'batch') parentPort.postMessage({ kind: 'ack', bytes: message.data.length, ends: batch(message) });
    else parentPort.postMessage({ kind: 'done', ...finish(message.tail) });
  } catch (error) {
    parentPort.postMessage({ kind: 'error', message: String(error && error.message || error), code: error && error.code });
  }
});
`;

const bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');

export interface BlobResult {
  size: number;
  digest: Digest;
  /** The digest of everything written into frames: the uncompressed tar. */
  diffID: Digest;
}

type BlobWorkerMessage =
  | { kind: 'ack'; bytes: number; ends: number[] }
  | { kind: 'done'; size: number; digest: Digest; diffID: Digest }
  | { kind: 'error'; message: string; code?: string };

/** The main thread's handle on the worker: a frame writer whose offsets arrive later. */
export class BlobWorker {
  private readonly worker: WorkerHandle<BlobWorkerMessage>;
  /** Opened here, not in the worker: terminating a worker does not close the files it opened. */
  private readonly fd: number;
  private batch = new Uint8Array(BATCH_BYTES);
  private batchUsed = 0;
  private ops: number[] = [];
  private inFlight = 0;
  private batchesInFlight = 0;
  private inFrame = false;
  private result: BlobResult | undefined;
  /** Frames started so far; the next frame gets this index. */
  frames = 0;
  /** End offset of each finished frame, in order, as far as the worker has reported them. */
  readonly ends: number[] = [];

  constructor(file: string, level: number, onProgress: () => void) {
    this.fd = fs.openSync(file, 'w');
    const onMessage = (message: BlobWorkerMessage) => {
      if (message.kind === 'ack') {
        this.inFlight -= message.bytes;
        this.batchesInFlight--;
        for (const end of message.ends) this.ends.push(end);
        onProgress();
      } else if (message.kind === 'done') {
        this.result = { size: message.size, digest: message.digest, diffID: message.diffID };
      } else {
        // The errno (ENOSPC) travels with the message: it decides the exit code.
        const error = new Error(`writing the zstd:chunked blob failed: ${message.message}`);
        throw Object.assign(error, { code: message.code });
      }
    };
    this.worker = new WorkerHandle(
      WORKER_SOURCE,
      { workerData: { fd: this.fd, level, bindingPath } },
      onMessage,
      'the zstd compression worker',
    );
  }

  /** Where frame `index` starts (frames are contiguous from the start of the blob). */
  frameStart(index: number): number {
    return index === 0 ? 0 : this.ends[index - 1]!;
  }

  /** Data for the current frame, starting a frame if none is open. */
  write(data: Uint8Array): void {
    if (data.length === 0) return;
    if (!this.inFrame) {
      this.inFrame = true;
      this.frames++;
    }
    let at = 0;
    while (at < data.length) {
      if (this.batchUsed === this.batch.length) this.post();
      const n = Math.min(data.length - at, this.batch.length - this.batchUsed);
      this.batch.set(data.subarray(at, at + n), this.batchUsed);
      this.batchUsed += n;
      this.ops.push(n);
      at += n;
    }
  }

  /** Ends the open frame; without one (nothing written since the last end) it does nothing. */
  endFrame(): void {
    if (!this.inFrame) return;
    this.inFrame = false;
    this.ops.push(END_FRAME);
  }

  /** Posts a full batch and waits while too much is in flight (the caller's backpressure). */
  async pace(): Promise<void> {
    if (this.batchUsed >= BATCH_BYTES / 2) this.post();
    await this.worker.until(() => this.inFlight <= MAX_IN_FLIGHT);
  }

  /** Waits until everything posted so far is compressed and every frame end is known. */
  async settle(): Promise<void> {
    this.post();
    await this.worker.until(() => this.batchesInFlight === 0);
  }

  /** Appends `tail` verbatim after the last frame, and ends the worker and the file. */
  async finish(tail: Buffer[]): Promise<BlobResult> {
    await this.settle();
    this.worker.post({ kind: 'finish', tail });
    await this.worker.until(() => this.result !== undefined);
    await this.stop();
    return this.result!;
  }

  /** Ends the worker and closes the file (after finish, or to abandon the conversion). */
  async stop(): Promise<void> {
    if (await this.worker.stop()) fs.closeSync(this.fd);
  }

  private post(): void {
    if (this.ops.length === 0) return;
    const data = this.batch.subarray(0, this.batchUsed);
    this.worker.post({ kind: 'batch', data, ops: this.ops }, [this.batch.buffer]);
    this.inFlight += this.batchUsed;
    this.batchesInFlight++;
    this.batch = new Uint8Array(BATCH_BYTES);
    this.batchUsed = 0;
    this.ops = [];
  }
}
