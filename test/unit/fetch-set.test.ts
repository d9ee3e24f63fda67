// The strategy module's plan of a partial pull (src/strategy/fetch-set.ts) from a TOC's compact
// records: what is held costs nothing, the same content is fetched once, chunks of zeros and
// chunks held locally are not fetched, and the ranges are what coalesceRanges makes of the rest.
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { type TocFile, tocFilesOf, type ValidatedToc } from '../../src/formats/zstd-chunked.js';
import { coalesceRanges } from '../../src/ranges/index.js';
import { type Availability, planFetchSet, withoutFiles } from '../../src/strategy/fetch-set.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
/** A single-chunk file whose frame is [start, end) of the blob. */
const small = (path: string, n: number, start: number, end: number): TocFile => ({
  path,
  size: n,
  digest: digest(n),
  chunks: [{ chunkOffset: 0, size: n, start, end, digest: digest(n), zeros: false }],
});
const tocOf = (files: TocFile[]): ValidatedToc => ({ files: tocFilesOf(files), entryCount: files.length });
const none = (toc: ValidatedToc, held: number[] = [], chunks: Digest[] = []): Availability => {
  const heldFiles = new Uint8Array(toc.files.length);
  for (const i of held) heldFiles[i] = 1;
  return { heldFiles, chunks: new Set(chunks) };
};

describe('planFetchSet', () => {
  const big: TocFile = {
    path: 'big',
    size: 300,
    digest: digest(1000),
    chunks: [
      { chunkOffset: 0, size: 100, start: 1000, end: 1050, digest: digest(1001), zeros: false },
      { chunkOffset: 100, size: 100, start: 1050, end: 1051, digest: digest(1002), zeros: true },
      { chunkOffset: 200, size: 100, start: 1051, end: 1100, digest: digest(1003), zeros: false },
    ],
  };
  const files = [
    small('a', 1, 0, 10),
    small('b', 2, 10, 30),
    small('copy-of-a', 1, 30, 40),
    small('c', 3, 2000, 2010),
    big,
  ];

  it('plans the files not held, each content once, with each chunk where it comes from', () => {
    const toc = tocOf(files);
    // b is held; copy-of-a has a's content; big's last chunk is held locally, its middle one zeros.
    const plan = planFetchSet(toc, none(toc, [1], [digest(1003)]));
    expect(plan.reusedFiles).toBe(1);
    expect(plan.localChunks).toBe(2);
    expect(plan.files).toEqual([
      { ...files[0], chunks: files[0]!.chunks.map((c) => ({ ...c, source: 'fetch' })) },
      { ...files[3], chunks: files[3]!.chunks.map((c) => ({ ...c, source: 'fetch' })) },
      {
        ...big,
        chunks: [
          { ...big.chunks[0], source: 'fetch' },
          { ...big.chunks[1], source: 'zeros' },
          { ...big.chunks[2], source: 'local' },
        ],
      },
    ]);
    // a's [0,10) and big's first chunk; c's range is more than the gap away from both.
    expect(plan.ranges).toEqual([
      { start: 0, end: 10 },
      { start: 1000, end: 1050 },
      { start: 2000, end: 2010 },
    ]);
    expect(plan.rangeBytes).toBe(10 + 50 + 10);
  });

  it('coalesces ranges as coalesceRanges does, whether the TOC lays its files out in order or not', () => {
    let state = 3;
    const next = (n: number) => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % n;
    };
    for (const shuffled of [false, true]) {
      const many: TocFile[] = [];
      let at = 0;
      for (let i = 1; i <= 400; i++) {
        at += next(600); // gaps either side of the 256-byte limit
        const length = 1 + next(50);
        many.push(small(`f${i}`, i, at, at + length));
        at += length;
      }
      if (shuffled) many.sort(() => next(3) - 1);
      const toc = tocOf(many);
      const held = Array.from({ length: 400 }, (_, i) => i).filter(() => next(4) === 0);
      const plan = planFetchSet(toc, none(toc, held));
      const wanted = many
        .filter((_, i) => !held.includes(i))
        .map((f) => ({ start: f.chunks[0]!.start, end: f.chunks[0]!.end }));
      expect(plan.ranges, shuffled ? 'shuffled' : 'in order').toEqual(
        coalesceRanges(wanted, { maxGap: 256 }),
      );
    }
  });

  it('keeps its counts without its files and ranges once a layer is done with them', () => {
    const toc = tocOf(files);
    const plan = planFetchSet(toc, none(toc));
    expect(withoutFiles(plan)).toEqual({
      files: [],
      ranges: [],
      rangeBytes: plan.rangeBytes,
      reusedFiles: 0,
      localChunks: 1,
    });
  });
});
