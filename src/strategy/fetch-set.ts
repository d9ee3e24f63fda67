/**
 * What a partial pull must fetch (docs/design.md §5, docs/formats.md "Partial fetches"): pure, so the plan knows
 * its byte counts before any body is fetched. A file whose content the store already holds costs
 * nothing; so does a chunk held locally (from any stored file of any layer) and a chunk of zeros.
 * What remains is fetched as coalesced byte ranges.
 *
 * The plan is kept as compactly as the TOC (docs/memory.md): which TOC files are missing and where
 * each of their chunks comes from, as typed arrays. `files` makes the objects the assembly works
 * on when it is first read, which only a partial pull does: the plan of a layer pulled in full
 * (every file missing) never becomes 100k objects.
 */
import type { Digest } from '../digest/index.js';
import type { TocChunk, TocFiles, ValidatedToc } from '../formats/zstd-chunked.js';
import { type ByteRange, coalesceRanges, totalBytes } from '../ranges/index.js';

export interface Availability {
  /** Per TOC file, by its index: 1 when the store holds its content. */
  heldFiles: Uint8Array;
  /** Chunk digests served locally: from an object the store holds, or an interrupted pull's pieces. */
  chunks: ReadonlySet<Digest>;
}

export type ChunkSource = 'fetch' | 'local' | 'zeros';

export interface PlannedChunk extends TocChunk {
  source: ChunkSource;
}

export interface PlannedFile {
  digest: Digest;
  size: number;
  path: string;
  chunks: PlannedChunk[];
}

export interface FetchSet {
  /** Files to assemble, one per missing digest (made on first use). */
  readonly files: readonly PlannedFile[];
  /** Byte ranges to fetch, sorted and coalesced. */
  readonly ranges: readonly ByteRange[];
  readonly rangeBytes: number;
  /** Files whose content was already held. */
  readonly reusedFiles: number;
  /** Chunks served locally or generated (zeros) instead of fetched. */
  readonly localChunks: number;
}

/**
 * Ranges closer than this are fetched as one: a multipart part costs ~100 bytes of headers, and
 * fewer, larger ranges keep requests short; a wider gap would fetch bytes nobody needs.
 */
export const DEFAULT_MAX_GAP = 256;

const SOURCES: readonly ChunkSource[] = ['fetch', 'local', 'zeros'];
const FETCH = 0;
const LOCAL = 1;
const ZEROS = 2;

export function planFetchSet(toc: ValidatedToc, available: Availability, maxGap = DEFAULT_MAX_GAP): FetchSet {
  const files = toc.files;
  const planned = new Uint32Array(files.length);
  let plannedCount = 0;
  const sources = new Uint8Array(files.chunkTotal);
  const seen = new Uint8Array(files.digestCount);
  const ranges = new RangeMerger(maxGap);
  let reusedFiles = 0;
  let localChunks = 0;
  for (let i = 0; i < files.length; i++) {
    if (available.heldFiles[i]) {
      reusedFiles++;
      continue;
    }
    // The same content twice in one layer is fetched once.
    if (seen[files.digestIndex(i)]) continue;
    seen[files.digestIndex(i)] = 1;
    planned[plannedCount++] = i;
    const first = files.firstChunk(i);
    for (let k = first; k < first + files.chunkCount(i); k++) {
      sources[k] = chunkSource(files, k, available);
      if (sources[k] === FETCH) ranges.add(files.chunkStart(k), files.chunkEnd(k));
      else localChunks++;
    }
  }
  const merged = ranges.finish();
  return new CompactFetchSet(files, planned.slice(0, plannedCount), sources, {
    ranges: merged,
    rangeBytes: totalBytes(merged),
    reusedFiles,
    localChunks,
  });
}

/** The plan without its files and ranges, for a layer done with them (its counts stay). */
export function withoutFiles(fetchSet: FetchSet): FetchSet {
  const { rangeBytes, reusedFiles, localChunks } = fetchSet;
  return { files: [], ranges: [], rangeBytes, reusedFiles, localChunks };
}

function chunkSource(files: TocFiles, chunk: number, available: Availability): number {
  if (files.chunkZeros(chunk)) return ZEROS;
  // A single-chunk file's chunk digest is its file digest: not a stored object, but an interrupted
  // pull may hold it as a verified piece (copy/store/partial.ts lists those among the chunks).
  if (available.chunks.size > 0 && available.chunks.has(files.chunk(chunk).digest)) return LOCAL;
  return FETCH;
}

/**
 * Coalesces ranges as `coalesceRanges` does, as they come: a TOC lays its files out in order, so
 * their chunks arrive sorted and merge on the fly, without a list of every chunk's range. Ranges
 * out of order fall back to collecting and sorting.
 */
class RangeMerger {
  private merged: ByteRange[] = [];
  private sorted = true;
  private lastStart = 0;

  constructor(private readonly maxGap: number) {}

  add(start: number, end: number): void {
    // Once out of order, the ranges merged so far stay merged: each covers what its parts did,
    // with gaps no wider than maxGap, so coalescing them with the rest gives the same result.
    if (start < this.lastStart) this.sorted = false;
    this.lastStart = start;
    const last = this.merged.at(-1);
    if (this.sorted && last && start - last.end <= this.maxGap) last.end = Math.max(last.end, end);
    else this.merged.push({ start, end });
  }

  finish(): ByteRange[] {
    return this.sorted ? this.merged : coalesceRanges(this.merged, { maxGap: this.maxGap });
  }
}

class CompactFetchSet implements FetchSet {
  readonly ranges: readonly ByteRange[];
  readonly rangeBytes: number;
  readonly reusedFiles: number;
  readonly localChunks: number;
  private made: PlannedFile[] | undefined;

  constructor(
    private readonly toc: TocFiles,
    /** TOC indexes of the files to assemble. */
    private readonly planned: Uint32Array,
    /** Per TOC chunk: FETCH, LOCAL or ZEROS (for the chunks of planned files). */
    private readonly sources: Uint8Array,
    counts: Pick<FetchSet, 'ranges' | 'rangeBytes' | 'reusedFiles' | 'localChunks'>,
  ) {
    this.ranges = counts.ranges;
    this.rangeBytes = counts.rangeBytes;
    this.reusedFiles = counts.reusedFiles;
    this.localChunks = counts.localChunks;
  }

  get files(): readonly PlannedFile[] {
    this.made ??= Array.from(this.planned, (i) => this.plannedFile(i));
    return this.made;
  }

  private plannedFile(i: number): PlannedFile {
    const toc = this.toc;
    const chunks: PlannedChunk[] = [];
    const first = toc.firstChunk(i);
    for (let k = first; k < first + toc.chunkCount(i); k++)
      chunks.push({ ...toc.chunk(k), source: SOURCES[this.sources[k]!]! });
    return { digest: toc.digest(i), size: toc.size(i), path: toc.path(i), chunks };
  }
}
