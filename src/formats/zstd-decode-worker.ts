/**
 * zstd decoding on a worker thread, for large layers. zstd-napi decodes synchronously, so on the
 * main thread a zstd:chunked full pull spent ~2.8 s of its ~7.6 s of CPU at 100k files decoding,
 * while tar parsing, hashing and the store waited (docs/performance.md "Full pull at 100k files").
 * Here the main thread only copies compressed bytes into batches; the worker decodes them into
 * output windows it transfers back, so decoding overlaps with everything downstream. One worker
 * serves every stream open at once (a pull's layers in flight): a worker each cost a V8 heap and
 * a malloc arena per layer (docs/memory.md).
 *
 * Memory stays bounded whatever the input: at most MAX_IN_FLIGHT compressed bytes are posted and
 * not yet decoded (the writer waits beyond it), and the worker produces a window only against a
 * credit, of which it holds at most CREDITS: the main thread gives credits back as the consumer
 * reads (`_read`). A bomb therefore decodes no faster than the consumer takes it, and the
 * consumer (TarSizeCap) refuses it at its bound, which ends the stream (and the worker with the
 * last stream).
 *
 * The decoding is the synchronous decoder's (zstd-stream.ts): frames back to back into whole
 * windows, skippable frames skipped, a stream that ends inside a frame refused with the same
 * message, and a decoder error passed on with zstd's message.
 */
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest/index.js';

/** Compressed bytes per message to the worker. */
const BATCH = 1024 * 1024;
/** The writer waits while more compressed bytes than this are posted but not yet decoded. */
const MAX_IN_FLIGHT = 2 * 1024 * 1024;
/** Output window: as the synchronous decoder's, so downstream sees buffers of the same sizes. */
export const WINDOW = 256 * 1024;
/** Windows the worker may fill ahead of the consumer (those decoded and those it holds credit for). */
export const CREDITS = 8;

/** What the stream ends with when its last frame is cut short (the synchronous decoder's words). */
export const ENDS_INSIDE_A_FRAME = 'zstd stream ends inside a frame';

// CommonJS source (eval), so it runs the same under tsc output and vitest, as blob-worker.ts does.
// One worker decodes every stream in flight (each layer pulled at once): a worker per layer cost
// each its own V8 heap and malloc arena (~16 MiB of pages each, docs/memory.md). Every message names
// its stream; each message about a stream is answered by at most one: the windows it filled
// meanwhile and the input bytes it used up (a message wakes the other thread, which on a loaded
// machine costs more than the copy). A stream decodes only against its credit, at most CREDITS
// windows per message, so the streams sharing the worker take turns.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const binding = require(workerData.bindingPath);
const WINDOW = workerData.window;
const streams = new Map();

function open(id) {
  return {
    id,
    dctx: new binding.DCtx(),
    // Everything decoded, in order, is the layer's tar: its digest is the DiffID, hashed here so
    // the main thread hashes only each file's content.
    diffID: createHash('sha256'),
    decodedBytes: 0,
    inputs: [],
    // Windows the main thread has copied out and sent back.
    free: [],
    window: undefined,
    filled: 0,
    inFrame: false,
    credit: 0,
    ending: false,
    windows: [],
    consumedBytes: 0,
    // Input buffers used up, sent back for the next batches: dropped here, they would wait for a
    // collection this thread, which allocates little, seldom makes (tens of MiB held).
    spent: [],
  };
}

function take(s) {
  s.diffID.update(s.window.subarray(0, s.filled));
  s.decodedBytes += s.filled;
  s.windows.push({ data: s.window.buffer, length: s.filled });
  s.window = undefined;
  s.filled = 0;
}

function report(s, done) {
  if (s.windows.length === 0 && s.consumedBytes === 0 && !done) return;
  const transfer = [...s.windows.map((w) => w.data), ...s.spent];
  const digest = done ? { diffID: 'sha256:' + s.diffID.digest('hex'), bytes: s.decodedBytes } : undefined;
  parentPort.postMessage(
    { kind: 'output', id: s.id, windows: s.windows, consumed: s.consumedBytes, spent: s.spent, digest },
    transfer,
  );
  s.windows = [];
  s.consumedBytes = 0;
  s.spent = [];
}

function run(s) {
  while (s.credit > 0 && s.inputs.length > 0) {
    const input = s.inputs[0];
    s.window ??= Buffer.from(s.free.pop() || new ArrayBuffer(WINDOW));
    const [left, produced, consumed] = s.dctx.decompressStream(s.window.subarray(s.filled), input.rest);
    // A call with nothing to do says what the next frame needs (9 bytes) even between frames.
    if (produced > 0 || consumed > 0) s.inFrame = left !== 0;
    s.filled += produced;
    input.rest = input.rest.subarray(consumed);
    if (s.filled === WINDOW) {
      // A full window: the decoder may hold more output for it even when the input is used up.
      s.credit--;
      take(s);
      continue;
    }
    if (input.rest.length === 0) {
      s.inputs.shift();
      s.consumedBytes += input.size;
      s.spent.push(input.buffer);
      continue;
    }
    if (produced === 0 && consumed === 0) throw new Error('zstd decoder made no progress');
  }
  const done = s.ending && s.inputs.length === 0;
  if (done) {
    if (s.inFrame) throw new Error('${ENDS_INSIDE_A_FRAME}');
    if (s.filled > 0) take(s);
    streams.delete(s.id);
  }
  report(s, done);
}

parentPort.on('message', (message) => {
  if (message.kind === 'open') return void streams.set(message.id, open(message.id));
  if (message.kind === 'ping') return parentPort.postMessage({ kind: 'pong', id: message.id });
  const s = streams.get(message.id);
  // Closed by the main thread, finished, or failed: what was still on its way is dropped.
  if (!s) return;
  if (message.kind === 'close') return void streams.delete(s.id);
  try {
    if (message.kind === 'input') {
      const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
      s.inputs.push({ rest: data, size: data.length, buffer: message.data.buffer });
    } else if (message.kind === 'credit') {
      s.credit += message.count;
      s.free.push(...message.windows);
    } else if (message.kind === 'end') s.ending = true;
    run(s);
  } catch (error) {
    // This stream fails alone: the others sharing the worker go on.
    streams.delete(s.id);
    report(s, false);
    parentPort.postMessage({ kind: 'error', id: s.id, message: String((error && error.message) || error) });
  }
});
`;

const bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');

/** The digest and size of a whole decoded stream: for a layer, its DiffID and tar size. */
export interface DecodedDigest {
  diffID: Digest;
  bytes: number;
}

type DecodeWorkerMessage = { id: number } & (
  | {
      kind: 'output';
      windows: Array<{ data: ArrayBuffer; length: number }>;
      consumed: number;
      /** The input batches' buffers, used up: the next batches are copied into them. */
      spent: ArrayBuffer[];
      /** With the last output: the digest and size of everything decoded. */
      digest?: DecodedDigest;
    }
  | { kind: 'pong' }
  | { kind: 'error'; message: string }
);

type Callback = (error?: Error | null) => void;

/**
 * The one decoding worker, shared by every stream open at once. Started by the first stream,
 * ended when the last one detaches (a pull's layers run at once, so they share it; a later layer
 * starts a new one). A stream that fails fails alone; a worker that dies fails every stream on it.
 */
class SharedDecodeWorker {
  private static current: SharedDecodeWorker | undefined;
  private readonly worker: Worker;
  private readonly streams = new Map<number, ZstdWorkerDecompressStream>();
  private nextId = 0;

  /** The worker streams open now share (started if there is none). */
  static get(): SharedDecodeWorker {
    SharedDecodeWorker.current ??= new SharedDecodeWorker();
    return SharedDecodeWorker.current;
  }

  /** The worker's thread id (tests: streams open at once share one). */
  get threadId(): number {
    return this.worker.threadId;
  }

  private constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bindingPath, window: WINDOW } });
    this.worker.on('message', (message: DecodeWorkerMessage) =>
      this.streams.get(message.id)?.onMessage(message),
    );
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', () => this.fail(new Error('the zstd decoding worker exited')));
  }

  attach(stream: ZstdWorkerDecompressStream): number {
    const id = this.nextId++;
    this.streams.set(id, stream);
    this.worker.postMessage({ kind: 'open', id });
    return id;
  }

  post(id: number, message: object, transfer: ArrayBuffer[] = []): void {
    if (this.streams.has(id)) this.worker.postMessage({ ...message, id }, transfer);
  }

  /** The stream needs the worker no more; `close`: the worker still holds its state (not finished). */
  detach(id: number, close: boolean): void {
    if (!this.streams.delete(id)) return;
    if (close) this.worker.postMessage({ kind: 'close', id });
    if (this.streams.size > 0) return;
    this.retire();
    void this.worker.terminate();
  }

  private retire(): void {
    if (SharedDecodeWorker.current === this) SharedDecodeWorker.current = undefined;
  }

  private fail(error: Error): void {
    this.retire();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) stream.destroy(error);
  }
}

/**
 * A Duplex, not a Transform: a Transform holds its writer's callback itself whenever its readable
 * side is full and releases it only from `_read`, which a stream calls only after a push; with
 * output arriving from another thread, that stalled the writer until some push came by chance.
 */
export class ZstdWorkerDecompressStream extends Duplex {
  private readonly worker = SharedDecodeWorker.get();
  private readonly id = this.worker.attach(this);
  private batch = Buffer.allocUnsafeSlow(BATCH);
  /** Windows copied out, for the worker to fill again. */
  private returned: ArrayBuffer[] = [];
  /** Batch buffers the worker has sent back. */
  private spare: ArrayBuffer[] = [];
  private batchUsed = 0;
  /** Compressed bytes posted and not yet decoded. */
  private inFlight = 0;
  /** Credits the worker holds: windows it may still fill. */
  private granted = 0;
  /** The writer's callback, held while too much is in flight. */
  private writeDone: Callback | undefined;
  /** The final callback, held until the worker has decoded everything. */
  private finalDone: Callback | undefined;
  private ended = false;
  private pongs: Array<() => void> = [];
  private decoded: DecodedDigest | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: Callback): void {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, BATCH - this.batchUsed);
      chunk.copy(this.batch, this.batchUsed, at, at + n);
      this.batchUsed += n;
      at += n;
      if (this.batchUsed === BATCH) this.postBatch();
    }
    if (this.inFlight > MAX_IN_FLIGHT) this.writeDone = done;
    else done();
  }

  override _final(done: Callback): void {
    this.postBatch();
    this.finalDone = done;
    this.worker.post(this.id, { kind: 'end' });
    this.grant();
  }

  /** The consumer wants more: give the worker back the credits of the windows it has taken. */
  override _read(): void {
    this.grant();
  }

  /**
   * The sha256 and size of everything this stream put out, once it has ended (the ingest's
   * `digestedBySource`): the worker hashed each window before handing it over, so the bytes hashed
   * are the bytes read.
   */
  async digested(): Promise<DecodedDigest> {
    if (!this.decoded) throw new Error('the zstd stream was not decoded to its end');
    return this.decoded;
  }

  /** The thread that decodes this stream (shared with every stream open at the same time). */
  get workerThreadId(): number {
    return this.worker.threadId;
  }

  /** Resolves once the worker has handled every message posted before (what it did is visible). */
  roundTrip(): Promise<void> {
    return new Promise((resolve) => {
      this.pongs.push(resolve);
      this.worker.post(this.id, { kind: 'ping' });
    });
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // Not finished: the worker drops what it holds of this stream; the other streams go on.
    if (!this.ended) this.worker.detach(this.id, true);
    this.ended = true;
    done(error);
  }

  /** @internal What the worker said about this stream. */
  onMessage(message: DecodeWorkerMessage): void {
    if (this.destroyed) return;
    switch (message.kind) {
      case 'output': {
        for (const window of message.windows) {
          if (window.length === WINDOW) this.granted--;
          // A copy in this thread's memory, and the window back to the worker: a buffer made on
          // another thread and dropped here was freed only by a full collection (measured: ~85
          // MiB more peak RSS when decoding a 240 MB tar), and downstream may keep views of it.
          const copy = Buffer.allocUnsafe(window.length);
          copy.set(new Uint8Array(window.data, 0, window.length));
          this.push(copy);
          this.returned.push(window.data);
        }
        this.inFlight -= message.consumed;
        this.spare.push(...message.spent);
        const waiting = this.writeDone;
        if (waiting && this.inFlight <= MAX_IN_FLIGHT) {
          this.writeDone = undefined;
          waiting();
        }
        if (message.digest) {
          this.decoded = message.digest;
          this.ended = true;
          this.worker.detach(this.id, false);
          this.push(null);
          const done = this.finalDone;
          this.finalDone = undefined;
          done?.();
        }
        return;
      }
      case 'pong':
        this.pongs.shift()?.();
        return;
      case 'error':
        // The worker has dropped this stream already.
        this.ended = true;
        this.worker.detach(this.id, false);
        this.destroy(new Error(message.message));
        return;
    }
  }

  /**
   * Tops the worker's credits up to CREDITS. Called from `_read`, which the stream calls only when
   * what stays buffered is under its high-water mark: so windows decoded ahead of the consumer
   * are at most CREDITS plus that.
   */
  private grant(): void {
    const count = CREDITS - this.granted;
    // Credits go in handfuls, not one per window taken: each message wakes the worker.
    if (count < CREDITS / 2 || this.ended) return;
    this.granted += count;
    const windows = this.returned;
    this.returned = [];
    this.worker.post(this.id, { kind: 'credit', count, windows }, windows);
  }

  private postBatch(): void {
    if (this.batchUsed === 0) return;
    const data = this.batch.subarray(0, this.batchUsed);
    this.worker.post(this.id, { kind: 'input', data }, [this.batch.buffer as ArrayBuffer]);
    this.inFlight += this.batchUsed;
    const spare = this.spare.pop();
    this.batch = spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BATCH);
    this.batchUsed = 0;
  }
}
