/**
 * gzip decoding and the DiffID's sha256 on a worker thread, for large layers. On the main thread a
 * gzip full pull's inflate ran on libuv's pool, but its callbacks (node's zlib `processCallback`),
 * the DiffID's sha256 over every byte and the allocation of every output chunk stayed on the
 * thread that also parses the tar, hashes each file and writes the store: ~15% of its samples for
 * zlib's callbacks and ~15% for sha256 (docs/performance.md "gzip layers on a worker"). Here the
 * worker inflates synchronously into 256 KiB windows and hashes each before handing it over; the
 * main thread's side is decode-worker.ts's. One worker decodes every gzip layer in flight (an
 * isolate per layer cost ~9 MiB each: 275 MiB peak for the 3.6 GB image's three layers at once).
 *
 * The decoder is node's own zlib, the same native code as `zlib.createGunzip()` on the main thread,
 * driven through its handle's synchronous `writeSync` (the call node's `zlib.gunzipSync` makes) so
 * that it inflates into the worker's own windows, a window at a time: the same bytes, the same
 * multi-member handling (eStargz is a gzip member per file), the same checks (header, CRC-32,
 * length) and the same messages ("unexpected end of file", "incorrect header check", ...). A Node
 * whose zlib streams lack that handle gets the main-thread gunzip instead (`gzipWorkerUsable`).
 */
import zlib from 'node:zlib';
import { WorkerDecompressStream } from './decode-worker.js';

// CommonJS source (eval), so it runs the same under tsc output and vitest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const zlib = require('node:zlib');
const { Z_NO_FLUSH, Z_FINISH } = zlib.constants;
const WINDOW = workerData.window;
const EMPTY = Buffer.alloc(0);
// Windows the main thread has copied out and sent back, shared by the streams.
const free = [];
const fresh = () => Buffer.from(free.pop() || new ArrayBuffer(WINDOW));
const streams = new Map();

/** One gzip stream being decoded: a layer. */
function open(id) {
  // Everything decoded, in order, is the layer's tar: its digest is the DiffID, hashed here so the
  // main thread hashes only each file's content.
  const diffID = createHash('sha256');
  let decodedBytes = 0;
  // Node's gunzip, driven by hand: writeSync inflates into the window given and leaves what is
  // left of the output and input space in _writeState; an error comes through the handle's onerror.
  const engine = zlib.createGunzip();
  const handle = engine._handle;
  const state = engine._writeState;
  let zlibError;
  handle.onerror = (message) => { zlibError = message; };
  const inputs = [];
  let window = fresh();
  let filled = 0;
  let credit = 0;
  let ending = false;
  // The gzip stream ended and zlib takes nothing more: node's Gunzip ends its output there too
  // (trailing zeros after the last member), so the rest of the input is passed over.
  let finished = false;
  let windows = [];
  let consumedBytes = 0;
  // Input buffers used up, sent back for the next batches.
  let spent = [];

  /** Inflates what it can of input into the window: [bytes produced, bytes consumed]. */
  function inflate(flush, input) {
    const room = WINDOW - filled;
    handle.writeSync(flush, input, 0, input.length, window, filled, room);
    if (zlibError !== undefined) throw new Error(zlibError);
    return [room - state[0], input.length - state[1]];
  }

  function take() {
    diffID.update(window.subarray(0, filled));
    decodedBytes += filled;
    windows.push({ data: window.buffer, length: filled });
    window = fresh();
    filled = 0;
  }

  function report(done) {
    if (windows.length === 0 && consumedBytes === 0 && !done) return;
    const transfer = [...windows.map((w) => w.data), ...spent];
    const digest = done ? { diffID: 'sha256:' + diffID.digest('hex'), bytes: decodedBytes } : undefined;
    parentPort.postMessage({ kind: 'output', id, windows, consumed: consumedBytes, spent, digest }, transfer);
    windows = [];
    consumedBytes = 0;
    spent = [];
  }

  function run() {
    while (credit > 0 && inputs.length > 0) {
      const input = inputs[0];
      const [produced, consumed] = finished ? [0, input.rest.length] : inflate(Z_NO_FLUSH, input.rest);
      filled += produced;
      input.rest = input.rest.subarray(consumed);
      if (filled === WINDOW) {
        // A full window: zlib may hold more output for it even when the input is used up.
        credit--;
        take();
        continue;
      }
      if (input.rest.length === 0) {
        inputs.shift();
        consumedBytes += input.size;
        spent.push(input.buffer);
        continue;
      }
      // Room for output and input to give, and zlib took none of it: its stream has ended.
      if (produced === 0 && consumed === 0) finished = true;
    }
    const done = ending && inputs.length === 0;
    if (done) {
      // Everything is in and flushed: Z_FINISH makes zlib refuse a stream cut short, as node's
      // Gunzip does when it ends ("unexpected end of file").
      if (!finished) filled += inflate(Z_FINISH, EMPTY)[0];
      if (filled > 0) take();
      close();
    }
    report(done);
  }

  function close() {
    streams.delete(id);
    engine.close();
    free.push(window.buffer);
  }

  function fail(error) {
    close();
    report(false);
    parentPort.postMessage({ kind: 'error', id, message: String((error && error.message) || error) });
  }

  return { inputs, run, close, fail, credit: (count) => { credit += count; }, end: () => { ending = true; } };
}

parentPort.on('message', (message) => {
  if (message.kind === 'ping') return parentPort.postMessage({ kind: 'pong', id: message.id });
  if (message.kind === 'credit') free.push(...message.windows);
  if (message.kind === 'open') return streams.set(message.id, open(message.id));
  // A stream that ended or failed hears nothing more.
  const stream = streams.get(message.id);
  if (!stream) return;
  try {
    if (message.kind === 'input') {
      const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
      stream.inputs.push({ rest: data, size: data.length, buffer: message.data.buffer });
    } else if (message.kind === 'credit') stream.credit(message.count);
    else if (message.kind === 'end') stream.end();
    else if (message.kind === 'close') return stream.close();
    stream.run();
  } catch (error) {
    stream.fail(error);
  }
});
`;

export class GzipWorkerDecompressStream extends WorkerDecompressStream {
  constructor() {
    super(WORKER_SOURCE, 'gzip decoding');
  }
}

let usable: boolean | undefined;

/**
 * Whether this Node's zlib streams have the handle the worker drives (`_handle.writeSync` and
 * `_writeState`, there since Node 10): without them gzip is decoded on the main thread, as before.
 */
export function gzipWorkerUsable(): boolean {
  if (usable === undefined) {
    const probe = zlib.createGunzip() as unknown as {
      _handle?: { writeSync?: unknown };
      _writeState?: unknown;
      close(): void;
    };
    usable = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array;
    probe.close();
  }
  return usable;
}
