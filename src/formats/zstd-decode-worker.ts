/**
 * zstd decoding on a worker thread, for large layers. zstd-napi decodes synchronously, so on the
 * main thread a zstd:chunked full pull spent ~2.8 s of its ~7.6 s of CPU at 100k files decoding,
 * while tar parsing, hashing and the store waited (docs/performance.md "Full pull at 100k files").
 * Here the main thread only copies compressed bytes into batches; the worker decodes them into
 * output windows it transfers back, so decoding overlaps with everything downstream. The main
 * thread's side, the protocol, the memory bound and the one worker shared by every stream in
 * flight are decode-worker.ts's; this file is the worker's source.
 *
 * The decoding is the synchronous decoder's (zstd-stream.ts): frames back to back into whole
 * windows, skippable frames skipped, a stream that ends inside a frame refused with the same
 * message, and a decoder error passed on with zstd's message.
 */
import { createRequire } from 'node:module';
import { WorkerDecompressStream } from './decode-worker.js';

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

/** A zstd stream decoded on the shared zstd worker. */
export class ZstdWorkerDecompressStream extends WorkerDecompressStream {
  constructor() {
    super(WORKER_SOURCE, 'zstd decoding', { bindingPath });
  }
}
