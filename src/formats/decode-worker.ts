/**
 * The main thread's side of a layer decoder that runs on a worker thread and hashes what it
 * decodes (the DiffID), for any decoder that speaks the protocol below: gzip-decode-worker.ts's and
 * zstd-decode-worker.ts's, which bring only their worker's source.
 *
 * The main thread only copies compressed bytes into batches; the worker decodes them into output
 * windows it transfers back, and hashes each window before it does. Memory stays bounded whatever
 * the input: at most MAX_IN_FLIGHT compressed bytes are posted and not yet decoded (the writer
 * waits beyond it), and the worker fills a window only against a credit, of which it holds at most
 * CREDITS: this side gives credits back as the consumer reads (`_read`). A bomb therefore decodes
 * no faster than the consumer takes it, and the consumer (TarSizeCap) refuses it at its bound,
 * which ends the stream (and the worker with the last stream).
 *
 * One worker decodes every stream of its kind in flight (`SharedDecodeWorker`): an isolate costs
 * ~9 MiB, and a full pull decodes up to `--jobs` layers at once. It starts with the first stream
 * and ends with the last. Every message names its stream (`id`). To the worker: `open` (first), `input` (a batch,
 * transferred), `credit` (a count, and the windows copied out, transferred back), `end`, `close`
 * (the stream is gone: drop its state), `ping` (answered `pong`). From it: `output` (the windows it
 * filled, the input bytes it used up and their buffers, and with the last one the digest and size
 * of everything decoded) and `error` (the decoder's message, for that stream alone). Each message
 * is answered by at most one: a message wakes the other thread, which on a loaded machine costs
 * more than the copy.
 */
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest/index.js';

/**
 * Layers whose blob is at least this large are decoded on a worker thread (gzip and zstd alike):
 * below it, starting a worker (~30 ms of CPU, an isolate's memory) costs more than it saves.
 */
export const WORKER_FROM_BYTES = 4 * 1024 * 1024;
/**
 * Compressed bytes per message to the worker: the one worker holds every layer's batches at once,
 * and the 3.6 GB image's pull peaked at 247–251 MiB with 1 MiB batches.
 */
export const BATCH = 512 * 1024;
/** The writer waits while more compressed bytes than this are posted but not yet decoded. */
const MAX_IN_FLIGHT = 1024 * 1024;
/** Output window: as the synchronous decoders', so downstream sees buffers of the same sizes. */
export const WINDOW = 256 * 1024;
/**
 * Windows the worker may fill ahead of the consumer (those decoded and those it holds credit for);
 * few, for the same reason as BATCH (8 when each layer had a worker of its own).
 */
export const CREDITS = 6;
/** Released copies kept for reuse: as many as the worker may fill ahead, and a few in the pipe. */
const MAX_REUSABLE = CREDITS + 2;

/** The digest and size of a whole decoded stream: for a layer, its DiffID and tar size. */
export interface DecodedDigest {
  diffID: Digest;
  bytes: number;
}

/** A decompressing stream that hashes what it puts out (the ingest's `digestedBySource`). */
export interface DigestingDecoder extends Duplex {
  digested(): Promise<DecodedDigest>;
}

export function isDigestingDecoder(stream: Duplex | undefined): stream is DigestingDecoder {
  return typeof (stream as Partial<DigestingDecoder> | undefined)?.digested === 'function';
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

/** The one worker of a decoder source, shared by the streams in flight. */
class SharedDecodeWorker {
  private static readonly running = new Map<string, SharedDecodeWorker>();
  private readonly worker: Worker;
  private readonly streams = new Map<number, WorkerDecompressStream>();
  private nextId = 1;

  /** The source's running worker, or a new one. */
  static for(source: string, what: string, workerData: object): SharedDecodeWorker {
    let shared = SharedDecodeWorker.running.get(source);
    if (!shared) {
      shared = new SharedDecodeWorker(source, what, workerData);
      SharedDecodeWorker.running.set(source, shared);
    }
    return shared;
  }

  /** The worker's thread id (tests: streams open at once share one). */
  get threadId(): number {
    return this.worker.threadId;
  }

  private constructor(
    private readonly source: string,
    what: string,
    workerData: object,
  ) {
    this.worker = new Worker(source, { eval: true, workerData: { ...workerData, window: WINDOW } });
    this.worker.on('message', (message: DecodeWorkerMessage) =>
      this.streams.get(message.id)?.onMessage(message),
    );
    this.worker.on('error', (error) => this.failAll(error));
    this.worker.on('exit', () => this.failAll(new Error(`the ${what} worker exited`)));
  }

  /**
   * A new stream: `open` goes before any of its messages (a port keeps their order), so streams
   * that start at once are told apart however their first batches interleave.
   */
  attach(stream: WorkerDecompressStream): number {
    const id = this.nextId++;
    this.streams.set(id, stream);
    this.post({ kind: 'open', id });
    return id;
  }

  post(message: { kind: string; id: number; [field: string]: unknown }, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** The stream is done with: the worker drops its state, and ends with the last stream. */
  detach(id: number): void {
    if (!this.streams.delete(id)) return;
    if (this.streams.size > 0) {
      this.post({ kind: 'close', id });
      return;
    }
    SharedDecodeWorker.running.delete(this.source);
    this.worker.removeAllListeners('exit');
    void this.worker.terminate();
  }

  private failAll(error: Error): void {
    if (SharedDecodeWorker.running.get(this.source) === this) SharedDecodeWorker.running.delete(this.source);
    for (const stream of [...this.streams.values()]) stream.destroy(error);
  }
}

type Callback = (error?: Error | null) => void;

/**
 * A Duplex, not a Transform: a Transform holds its writer's callback itself whenever its readable
 * side is full and releases it only from `_read`, which a stream calls only after a push; with
 * output arriving from another thread, that stalled the writer until some push came by chance.
 */
export class WorkerDecompressStream extends Duplex implements DigestingDecoder {
  private readonly worker: SharedDecodeWorker;
  private readonly id: number;
  private batch = Buffer.allocUnsafeSlow(BATCH);
  /** Windows copied out, for the worker to fill again. */
  private returned: ArrayBuffer[] = [];
  /** Batch buffers the worker has sent back. */
  private spare: ArrayBuffer[] = [];
  /**
   * Copies handed back by the consumer (`release`), for the next windows: without them each window
   * is a fresh 256 KiB buffer that lives until a collection finds it dead (10-40 MiB of them).
   */
  private reusable: Buffer[] = [];
  /** Copies pushed and not yet released: only these are taken back. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
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

  /**
   * `source`: the worker's CommonJS source (run with `eval`, so it works the same under tsc's
   * output and vitest; it gets `window` in its workerData, beside `workerData`). `what` names the
   * decoder in errors.
   */
  constructor(
    source: string,
    private readonly what: string,
    workerData: object = {},
  ) {
    super();
    this.worker = SharedDecodeWorker.for(source, what, workerData);
    this.id = this.worker.attach(this);
  }

  /** The thread that decodes this stream (shared with every stream of its kind open at once). */
  get workerThreadId(): number {
    return this.worker.threadId;
  }

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
    this.worker.post({ kind: 'end', id: this.id });
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
    if (!this.decoded) throw new Error(`the ${this.what} stream was not decoded to its end`);
    return this.decoded;
  }

  /**
   * The consumer holds no view of `chunk` (one this stream pushed) any more: its buffer may carry
   * the next window. A chunk this stream did not push, or one already released, is ignored.
   */
  release(chunk: Uint8Array): void {
    const buffer = chunk.buffer;
    if (!this.lent.delete(buffer) || this.reusable.length >= MAX_REUSABLE) return;
    this.reusable.push(Buffer.from(buffer as ArrayBuffer));
  }

  /** Resolves once the worker has handled every message posted before (what it did is visible). */
  roundTrip(): Promise<void> {
    return new Promise((resolve) => {
      this.pongs.push(resolve);
      this.worker.post({ kind: 'ping', id: this.id });
    });
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.ended = true;
    this.worker.detach(this.id);
    done(error);
  }

  /** A message of the worker's about this stream. */
  onMessage(message: DecodeWorkerMessage): void {
    if (this.destroyed) return;
    switch (message.kind) {
      case 'output': {
        for (const window of message.windows) {
          if (window.length === WINDOW) this.granted--;
          // A copy in this thread's memory, and the window back to the worker: a buffer made on
          // another thread and dropped here is freed only by a full collection, and downstream
          // may keep views of it. The copy goes into a buffer the consumer released if there is one.
          const copy = this.reusable.pop() ?? Buffer.allocUnsafeSlow(WINDOW);
          copy.set(new Uint8Array(window.data, 0, window.length));
          this.lent.add(copy.buffer);
          this.push(window.length === WINDOW ? copy : copy.subarray(0, window.length));
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
          this.worker.detach(this.id);
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
    this.worker.post({ kind: 'credit', id: this.id, count, windows }, windows);
  }

  private postBatch(): void {
    if (this.batchUsed === 0) return;
    const data = this.batch.subarray(0, this.batchUsed);
    this.worker.post({ kind: 'input', id: this.id, data }, [this.batch.buffer as ArrayBuffer]);
    this.inFlight += this.batchUsed;
    const spare = this.spare.pop();
    this.batch = spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BATCH);
    this.batchUsed = 0;
  }
}
