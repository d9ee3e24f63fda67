/**
 * Content-defined chunking of one file's content, cut the way containers/storage's zstd:chunked
 * writer cuts it (pkg/chunked/compressor): a bup-style rolling sum over a 64-byte window, a cut
 * after any byte where the low 16 bits of its second sum are all ones (64 KiB chunks on average),
 * and every run of at least 1024 zero bytes made a chunk of its own ("zeros"), which the sum sees
 * but never cuts inside. Matching those boundaries means a layer converted by skiff and the same
 * layer converted by skopeo share chunk digests, so either one's chunks serve the other's pulls.
 *
 * The rolling sum is the per-byte hot path, so it does nothing else: its state lives in locals,
 * the byte leaving the window is read back from the input, and nothing is allocated. Holes are
 * found beforehand by probing every 512th byte (a run of 1024 zeros cannot hide between probes),
 * and zeros ending a buffer wait for the next one, which decides whether their run is a hole.
 */

/** Where the chunker sends the file's bytes, in order, and where it says a chunk ends. */
export interface ChunkSink {
  write(bytes: Uint8Array): void;
  /** Ends the current chunk; a sink ignores a cut when the chunk is empty. */
  cut(kind: 'data' | 'zeros'): void;
}

export const ROLLSUM_BITS = 16;
/** A run of zeros at least this long becomes a "zeros" chunk (containers/storage's holesThreshold). */
export const HOLE_THRESHOLD = 1024;

const WINDOW = 64;
const CHAR_OFFSET = 31;
const SPLIT_MASK = (1 << ROLLSUM_BITS) - 1;
/** Probe spacing when looking for holes: at most half the hole size. */
const PROBE = HOLE_THRESHOLD / 2;
/** A static source of zeros for holes and for zero runs carried over from an earlier buffer. */
const ZEROS = Buffer.alloc(64 * 1024);

/** The rolling sum: s1 is the window's byte sum, s2 the sum of the s1 values (both mod 2^32). */
export class RollSum {
  s1 = WINDOW * CHAR_OFFSET;
  s2 = WINDOW * (WINDOW - 1) * CHAR_OFFSET;
  /** The last WINDOW bytes rolled, oldest at `position`. */
  readonly window = new Uint8Array(WINDOW);
  position = 0;

  /** Rolls data[start, end) in until a byte ends a chunk: returns the index after it, or -1. */
  rollUntilSplit(data: Uint8Array, start: number, end: number): number {
    // The first WINDOW bytes push bytes out of the ring; after that the byte leaving the window is
    // still in `data`, so the hot loop reads it there and the ring is refilled once at the end.
    const ringEnd = Math.min(end, start + WINDOW);
    const split = this.rollRing(data, start, ringEnd);
    if (split >= 0 || ringEnd === end) return split;
    const flatSplit = this.rollFlat(data, ringEnd, end);
    const stop = flatSplit < 0 ? end : flatSplit;
    this.window.set(data.subarray(stop - WINDOW, stop));
    this.position = 0;
    return flatSplit;
  }

  /** Rolls up to `count` zeros, stopping after one that ends a chunk; returns how many it rolled. */
  rollZerosUntilSplit(count: number): number {
    for (let i = 0; i < count; i++) {
      this.rollZeros(1);
      if ((this.s2 & SPLIT_MASK) === SPLIT_MASK) return i + 1;
    }
    return count;
  }

  /** Rolls `count` zeros without looking for cuts; past a full window the state no longer changes. */
  rollZeros(count: number): void {
    const n = Math.min(count, WINDOW);
    for (let i = 0; i < n; i++) {
      const drop = this.window[this.position]!;
      this.s1 = (this.s1 - drop) | 0;
      this.s2 = (this.s2 + this.s1 - WINDOW * (drop + CHAR_OFFSET)) | 0;
      this.window[this.position] = 0;
      this.position = (this.position + 1) & (WINDOW - 1);
    }
  }

  private rollRing(data: Uint8Array, start: number, end: number): number {
    let s1 = this.s1;
    let s2 = this.s2;
    let position = this.position;
    const window = this.window;
    let split = -1;
    for (let i = start; i < end; i++) {
      const ch = data[i]!;
      const drop = window[position]!;
      window[position] = ch;
      position = (position + 1) & (WINDOW - 1);
      s1 = (s1 + ch - drop) | 0;
      s2 = (s2 + s1 - WINDOW * (drop + CHAR_OFFSET)) | 0;
      if ((s2 & SPLIT_MASK) === SPLIT_MASK) {
        split = i + 1;
        break;
      }
    }
    this.s1 = s1;
    this.s2 = s2;
    this.position = position;
    return split;
  }

  /** The hot loop; `start` is at least WINDOW bytes into this call's range. */
  private rollFlat(data: Uint8Array, start: number, end: number): number {
    let s1 = this.s1;
    let s2 = this.s2;
    let split = -1;
    for (let i = start; i < end; i++) {
      const ch = data[i]!;
      const drop = data[i - WINDOW]!;
      s1 = (s1 + ch - drop) | 0;
      s2 = (s2 + s1 - WINDOW * (drop + CHAR_OFFSET)) | 0;
      if ((s2 & SPLIT_MASK) === SPLIT_MASK) {
        split = i + 1;
        break;
      }
    }
    this.s1 = s1;
    this.s2 = s2;
    return split;
  }
}

/** Chunks one file's content as it streams in; call finish() after the last byte. */
export class ContentChunker {
  private readonly sum = new RollSum();
  /** Zeros that ended the previous buffer, their run still shorter than a hole. */
  private pendingZeros = 0;
  /** Length of the hole being read, once its run has reached the threshold. */
  private hole = 0;

  constructor(private readonly sink: ChunkSink) {}

  push(data: Uint8Array): void {
    let i = this.hole > 0 || this.pendingZeros > 0 ? this.continueRun(data) : 0;
    if (i >= data.length) return;
    // Every zero run before `tail` ends inside this buffer, so its length is known here.
    const tail = trailingZeros(data, i);
    while (i < tail) {
      const hole = findHole(data, i, tail);
      this.rolled(data, i, hole < 0 ? tail : hole);
      if (hole < 0) break;
      let j = hole;
      while (data[j] === 0) j++;
      this.hole = j - hole;
      this.endHole();
      i = j;
    }
    const trailing = data.length - tail;
    if (trailing >= HOLE_THRESHOLD) this.hole = trailing;
    else this.pendingZeros = trailing;
  }

  finish(): void {
    if (this.hole > 0) this.endHole();
    else if (this.pendingZeros > 0) this.flushPendingZeros();
    this.sink.cut('data');
  }

  /** Continues a hole or an undecided run from the previous buffer; returns where to go on. */
  private continueRun(data: Uint8Array): number {
    let j = 0;
    while (j < data.length && data[j] === 0) j++;
    if (this.hole > 0 || this.pendingZeros + j >= HOLE_THRESHOLD) {
      this.hole += this.pendingZeros + j;
      this.pendingZeros = 0;
      if (j < data.length) this.endHole();
      return j;
    }
    if (j === data.length) {
      this.pendingZeros += j;
      return j;
    }
    // The run ended short: its zeros are ordinary content. The ones in this buffer are rolled by push.
    this.flushPendingZeros();
    return 0;
  }

  /** A short zero run carried over from the previous buffer: ordinary content after all. */
  private flushPendingZeros(): void {
    const count = this.pendingZeros;
    this.pendingZeros = 0;
    let from = 0;
    while (from < count) {
      const rolled = this.sum.rollZerosUntilSplit(count - from);
      this.sink.write(ZEROS.subarray(from, from + rolled));
      from += rolled;
      if ((this.sum.s2 & SPLIT_MASK) === SPLIT_MASK) this.sink.cut('data');
    }
  }

  /** A hole is its own chunk: the data before it is cut first, and the sum still sees its zeros. */
  private endHole(): void {
    const length = this.hole;
    this.hole = 0;
    this.sink.cut('data');
    this.sum.rollZeros(length);
    for (let left = length; left > 0; left -= ZEROS.length) {
      this.sink.write(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    }
    this.sink.cut('zeros');
  }

  /** Rolls data[start, end), sending it on and cutting wherever the sum says. */
  private rolled(data: Uint8Array, start: number, end: number): void {
    let from = start;
    while (from < end) {
      const split = this.sum.rollUntilSplit(data, from, end);
      const to = split < 0 ? end : split;
      this.sink.write(data.subarray(from, to));
      if (split >= 0) this.sink.cut('data');
      from = to;
    }
  }
}

/** Where the run of zeros that ends `data` starts (data.length when the last byte is not zero). */
function trailingZeros(data: Uint8Array, from: number): number {
  let tail = data.length;
  while (tail > from && data[tail - 1] === 0) tail--;
  return tail;
}

/**
 * The start of the first run of at least HOLE_THRESHOLD zeros in data[from, to), or -1. Every
 * run there ends before `to`; one starting before `from` is known to be short (a hole is never
 * rolled into), so measuring from `from` is enough.
 */
function findHole(data: Uint8Array, from: number, to: number): number {
  for (let probe = from; probe < to; probe += PROBE) {
    if (data[probe] !== 0) continue;
    let start = probe;
    while (start > from && data[start - 1] === 0) start--;
    let end = probe + 1;
    while (end < to && data[end] === 0) end++;
    if (end - start >= HOLE_THRESHOLD) return start;
    probe = end - PROBE;
  }
  return -1;
}
