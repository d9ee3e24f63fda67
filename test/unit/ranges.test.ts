import { describe, expect, it } from 'vitest';
import { batchRanges, coalesceRanges, rangeHeaderValue, totalBytes } from '../../src/ranges/index.js';

const r = (start: number, end: number) => ({ start, end });

describe('coalesceRanges', () => {
  it('merges adjacent and overlapping ranges', () => {
    expect(coalesceRanges([r(0, 10), r(10, 20)], { maxGap: 0 })).toEqual([r(0, 20)]);
    expect(coalesceRanges([r(0, 10), r(5, 15)], { maxGap: 0 })).toEqual([r(0, 15)]);
    expect(coalesceRanges([r(0, 100), r(10, 20)], { maxGap: 0 })).toEqual([r(0, 100)]);
  });

  it('merges a gap of exactly maxGap, not maxGap + 1', () => {
    expect(coalesceRanges([r(0, 10), r(15, 20)], { maxGap: 5 })).toEqual([r(0, 20)]);
    expect(coalesceRanges([r(0, 10), r(16, 20)], { maxGap: 5 })).toEqual([r(0, 10), r(16, 20)]);
    expect(coalesceRanges([r(0, 10), r(11, 20)], { maxGap: 0 })).toEqual([r(0, 10), r(11, 20)]);
  });

  it('sorts unsorted input and chains merges', () => {
    const input = [r(50, 60), r(0, 10), r(30, 40), r(12, 28), r(100, 110)];
    expect(coalesceRanges(input, { maxGap: 2 })).toEqual([r(0, 40), r(50, 60), r(100, 110)]);
  });

  it('keeps a later range that ends inside a merged one from shrinking it', () => {
    expect(coalesceRanges([r(0, 50), r(20, 30), r(40, 45)], { maxGap: 0 })).toEqual([r(0, 50)]);
  });

  it('drops empty ranges, even inside gaps, and does not mutate its input', () => {
    const input = [r(0, 10), r(12, 12), r(30, 30), r(20, 25)];
    const copy = structuredClone(input);
    expect(coalesceRanges(input, { maxGap: 3 })).toEqual([r(0, 10), r(20, 25)]);
    expect(input).toEqual(copy);
    expect(coalesceRanges([], { maxGap: 3 })).toEqual([]);
  });

  it('returns fresh objects', () => {
    const input = [r(0, 10)];
    const out = coalesceRanges(input, { maxGap: 0 });
    out[0]!.end = 99;
    expect(input[0]!.end).toBe(10);
  });

  it('rejects invalid input', () => {
    expect(() => coalesceRanges([r(10, 5)], { maxGap: 0 })).toThrow(/start 10 > end 5/);
    expect(() => coalesceRanges([r(-1, 5)], { maxGap: 0 })).toThrow(/non-negative integer/);
    expect(() => coalesceRanges([r(0.5, 5)], { maxGap: 0 })).toThrow(/non-negative integer/);
    expect(() => coalesceRanges([r(0, Number.NaN)], { maxGap: 0 })).toThrow(/non-negative integer/);
    expect(() => coalesceRanges([r(0, 5)], { maxGap: -1 })).toThrow(/maxGap/);
  });
});

describe('batchRanges', () => {
  const ten = Array.from({ length: 10 }, (_, i) => r(i * 100, i * 100 + 10));

  it('caps ranges per request', () => {
    const batches = batchRanges(ten, { maxRangesPerRequest: 4 });
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(batches.flat()).toEqual(ten);
    expect(batchRanges(ten, { maxRangesPerRequest: 10 })).toEqual([ten]);
    expect(batchRanges(ten, { maxRangesPerRequest: 1 })).toEqual(ten.map((x) => [x]));
  });

  it('caps bytes per request, filling a batch exactly to the limit', () => {
    const batches = batchRanges(ten, { maxRangesPerRequest: 100, maxBytesPerRequest: 30 });
    expect(batches.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(
      batchRanges(ten, { maxRangesPerRequest: 100, maxBytesPerRequest: 29 }).map((b) => b.length),
    ).toEqual(Array(5).fill(2));
  });

  it('spreads ranges evenly over the requests that go out at once, within the caps', () => {
    const spread = (max: number, requests: number, minRanges = 1) =>
      batchRanges(ten, { maxRangesPerRequest: max, spread: { requests, minRanges } }).map((b) => b.length);
    expect(spread(100, 4)).toEqual([3, 3, 3, 1]);
    expect(spread(100, 2)).toEqual([5, 5]);
    expect(spread(2, 2)).toEqual([2, 2, 2, 2, 2]);
    expect(spread(100, 20)).toEqual(Array(10).fill(1));
    // A handful of ranges stays in one request: spreading is for when there are many.
    expect(spread(100, 4, 16)).toEqual([10]);
    expect(spread(100, 4, 4)).toEqual([4, 4, 2]);
    const flat = batchRanges(ten, { maxRangesPerRequest: 100, spread: { requests: 3, minRanges: 1 } });
    expect(flat.flat()).toEqual(ten);
  });

  it('applies whichever limit is hit first', () => {
    const batches = batchRanges(ten, { maxRangesPerRequest: 2, maxBytesPerRequest: 1000 });
    expect(batches.map((b) => b.length)).toEqual([2, 2, 2, 2, 2]);
  });

  it('gives a range larger than maxBytesPerRequest a batch of its own', () => {
    const input = [r(0, 10), r(20, 1020), r(2000, 2010), r(3000, 3010)];
    expect(batchRanges(input, { maxRangesPerRequest: 10, maxBytesPerRequest: 100 })).toEqual([
      [r(0, 10)],
      [r(20, 1020)],
      [r(2000, 2010), r(3000, 3010)],
    ]);
    expect(batchRanges([r(0, 1000)], { maxRangesPerRequest: 10, maxBytesPerRequest: 100 })).toEqual([
      [r(0, 1000)],
    ]);
  });

  it('drops empty ranges and returns no batches for nothing', () => {
    expect(batchRanges([], { maxRangesPerRequest: 3 })).toEqual([]);
    expect(batchRanges([r(5, 5)], { maxRangesPerRequest: 3 })).toEqual([]);
    expect(batchRanges([r(0, 1), r(5, 5), r(7, 8)], { maxRangesPerRequest: 1 })).toEqual([
      [r(0, 1)],
      [r(7, 8)],
    ]);
  });

  it('rejects invalid limits and ranges', () => {
    expect(() => batchRanges(ten, { maxRangesPerRequest: 0 })).toThrow(/maxRangesPerRequest/);
    expect(() => batchRanges(ten, { maxRangesPerRequest: 1.5 })).toThrow(/maxRangesPerRequest/);
    expect(() => batchRanges(ten, { maxRangesPerRequest: 1, maxBytesPerRequest: 0 })).toThrow(
      /maxBytesPerRequest/,
    );
    expect(() => batchRanges([r(3, 2)], { maxRangesPerRequest: 1 })).toThrow(/start 3 > end 2/);
  });
});

describe('rangeHeaderValue', () => {
  it('writes inclusive HTTP ranges in the given order', () => {
    expect(rangeHeaderValue([r(0, 100), r(200, 300)])).toBe('bytes=0-99,200-299');
    expect(rangeHeaderValue([r(7, 8)])).toBe('bytes=7-7');
    expect(rangeHeaderValue([r(50, 60), r(0, 1)])).toBe('bytes=50-59,0-0');
  });

  it('refuses what HTTP cannot express', () => {
    expect(() => rangeHeaderValue([])).toThrow(/no ranges/);
    expect(() => rangeHeaderValue([r(5, 5)])).toThrow(/empty range/);
    expect(() => rangeHeaderValue([r(5, 4)])).toThrow(/start 5 > end 4/);
  });
});

describe('totalBytes', () => {
  it('sums range sizes', () => {
    expect(totalBytes([])).toBe(0);
    expect(totalBytes([r(0, 100), r(200, 250), r(7, 7)])).toBe(150);
    expect(() => totalBytes([r(2, 1)])).toThrow();
  });
});
