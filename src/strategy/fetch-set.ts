/**
 * What a partial pull must fetch (docs/design.md §5, docs/formats.md "Partial fetches"): pure, so the plan knows
 * its byte counts before any body is fetched. A file whose content the store already holds costs
 * nothing; so does a chunk held locally (from any stored file of any layer) and a chunk of zeros.
 * What remains is fetched as coalesced byte ranges.
 */
import type { Digest } from '../digest/index.js';
import type { TocChunk, ValidatedToc } from '../formats/zstd-chunked.js';
import { type ByteRange, coalesceRanges, totalBytes } from '../ranges/index.js';

export interface Availability {
  /** File digests whose content the store holds. */
  objects: ReadonlySet<Digest>;
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
  /** Files to assemble, one per missing digest. */
  files: PlannedFile[];
  /** Byte ranges to fetch, sorted and coalesced. */
  ranges: ByteRange[];
  rangeBytes: number;
  /** Files whose content was already held. */
  reusedFiles: number;
  /** Chunks served locally or generated (zeros) instead of fetched. */
  localChunks: number;
}

/**
 * Ranges closer than this are fetched as one: a multipart part costs ~100 bytes of headers, and
 * fewer, larger ranges keep requests short; a wider gap would fetch bytes nobody needs.
 */
export const DEFAULT_MAX_GAP = 256;

export function planFetchSet(toc: ValidatedToc, available: Availability, maxGap = DEFAULT_MAX_GAP): FetchSet {
  const planned = new Map<Digest, PlannedFile>();
  let reusedFiles = 0;
  let localChunks = 0;
  for (const file of toc.files) {
    if (available.objects.has(file.digest)) {
      reusedFiles++;
      continue;
    }
    if (planned.has(file.digest)) continue; // the same content twice in one layer is fetched once
    const chunks = file.chunks.map((chunk) => ({ ...chunk, source: chunkSource(chunk, available) }));
    localChunks += chunks.filter((c) => c.source !== 'fetch').length;
    planned.set(file.digest, { digest: file.digest, size: file.size, path: file.path, chunks });
  }
  const files = [...planned.values()];
  const wanted = files.flatMap((f) =>
    f.chunks.filter((c) => c.source === 'fetch').map((c) => ({ start: c.start, end: c.end })),
  );
  const ranges = coalesceRanges(wanted, { maxGap });
  return { files, ranges, rangeBytes: totalBytes(ranges), reusedFiles, localChunks };
}

function chunkSource(chunk: TocChunk, available: Availability): ChunkSource {
  if (chunk.zeros) return 'zeros';
  // A single-chunk file's chunk digest is its file digest: not a stored object, but an interrupted
  // pull may hold it as a verified piece (copy/store/partial.ts lists those among the chunks).
  if (available.chunks.has(chunk.digest)) return 'local';
  return 'fetch';
}
