/**
 * The partial-fetch contract every image source that serves byte ranges keeps (the registry client
 * and local sources alike), and the byte-range arithmetic for partial blob fetches (docs/formats.md
 * "Partial fetches"): merge the ranges a partial pull wants into few, larger ones, and split them
 * into requests whose Range header a server will accept. A leaf: it imports nothing but the error
 * classes, so src/registry, src/transport and the engine all depend on it and not on each other.
 * Pure: no I/O.
 */
import type { Readable } from 'node:stream';
import { VerificationError } from '../errors/index.js';

/** A half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Receives one requested range as a stream; ranges arrive one at a time, in ascending order. */
export type RangeConsumer = (range: ByteRange, data: Readable) => Promise<void>;

/**
 * The source answered a Range request with the whole blob (200) or without the ranges asked for.
 * Not an error for the pull: a run-time fact the strategy module decides on.
 */
export class RangesNotHonouredError extends Error {
  constructor(
    readonly how: 'ignored' | 'multi-range-refused',
    message: string,
  ) {
    super(message);
  }
}

/** A part of a range answer ended before the ranges it was meant to carry (worth asking again). */
export class PartTruncatedError extends Error {}

/** A `multipart/byteranges` body ended before its closing boundary (worth asking again). */
export class MultipartTruncatedError extends VerificationError {}

export interface CoalesceOptions {
  /** Ranges separated by at most this many bytes are merged: one request beats two round trips. */
  maxGap: number;
}

export interface BatchOptions {
  /** Servers cap the Range header's size, so the number of ranges per request is bounded. */
  maxRangesPerRequest: number;
  /** Keeps one request from carrying most of a blob, so requests can run in parallel. */
  maxBytesPerRequest?: number;
  /**
   * Fewer ranges per request (never under `minRanges`) when that lets them all go out in
   * `requests` requests at once: the requests in flight then share the work, instead of a last
   * round trip carrying the remainder.
   */
  spread?: { requests: number; minRanges: number };
}

/** Sorts, drops empty ranges, and merges ranges that overlap, touch, or are at most `maxGap` apart. */
export function coalesceRanges(ranges: readonly ByteRange[], options: CoalesceOptions): ByteRange[] {
  checkCount(options.maxGap, 'maxGap');
  ranges.forEach(checkRange);
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: ByteRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last && range.start - last.end <= options.maxGap) {
      last.end = Math.max(last.end, range.end);
    } else {
      merged.push({ start: range.start, end: range.end });
    }
  }
  return merged;
}

/**
 * Splits a coalesced list into request batches, keeping order. A batch never exceeds either limit,
 * except that a single range larger than `maxBytesPerRequest` gets a batch of its own (splitting it
 * would only add requests). Empty ranges are dropped: HTTP cannot express them.
 */
export function batchRanges(ranges: readonly ByteRange[], options: BatchOptions): ByteRange[][] {
  checkPositive(options.maxRangesPerRequest, 'maxRangesPerRequest');
  const maxBytes = options.maxBytesPerRequest ?? Number.POSITIVE_INFINITY;
  if (options.maxBytesPerRequest !== undefined)
    checkPositive(options.maxBytesPerRequest, 'maxBytesPerRequest');
  ranges.forEach(checkRange);
  const perRequest = rangesPerBatch(ranges, options);
  const batches: ByteRange[][] = [];
  let current: ByteRange[] = [];
  let bytes = 0;
  for (const range of ranges) {
    const size = range.end - range.start;
    if (size === 0) continue;
    if (current.length > 0 && (current.length >= perRequest || bytes + size > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push({ start: range.start, end: range.end });
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Ranges per batch: the maximum, or fewer so that they spread evenly (see BatchOptions.spread). */
function rangesPerBatch(ranges: readonly ByteRange[], options: BatchOptions): number {
  const { spread, maxRangesPerRequest: max } = options;
  if (!spread) return max;
  checkPositive(spread.requests, 'spread.requests');
  checkPositive(spread.minRanges, 'spread.minRanges');
  const count = ranges.filter((r) => r.end > r.start).length;
  return Math.min(max, Math.max(spread.minRanges, Math.ceil(count / spread.requests)));
}

/** The value of a `Range` header for these ranges; HTTP ranges are inclusive, ours are half-open. */
export function rangeHeaderValue(ranges: readonly ByteRange[]): string {
  if (ranges.length === 0) throw new Error('rangeHeaderValue: no ranges');
  ranges.forEach(checkRange);
  const parts = ranges.map((r) => {
    if (r.end === r.start)
      throw new Error(`rangeHeaderValue: empty range [${r.start}, ${r.end}) cannot be requested`);
    return `${r.start}-${r.end - 1}`;
  });
  return `bytes=${parts.join(',')}`;
}

/** The number of bytes the ranges cover, counting overlaps twice (it is what a request transfers). */
export function totalBytes(ranges: readonly ByteRange[]): number {
  ranges.forEach(checkRange);
  return ranges.reduce((sum, r) => sum + (r.end - r.start), 0);
}

function checkRange(range: ByteRange): void {
  checkCount(range.start, 'range start');
  checkCount(range.end, 'range end');
  if (range.start > range.end) throw new Error(`invalid byte range: start ${range.start} > end ${range.end}`);
}

function checkCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`${what} must be a non-negative integer, got ${value}`);
}

function checkPositive(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${what} must be a positive integer, got ${value}`);
}
