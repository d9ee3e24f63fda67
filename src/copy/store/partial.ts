/**
 * The `partial` method (docs/design.md §5): fetch the TOC and only the missing files and chunks, rebuild the
 * exact tar with the tar-split, and prove the DiffID. Nothing here decides a fallback: what it
 * learns (ranges ignored, TOC unverifiable, DiffID mismatch) goes back to the strategy module as a
 * RuntimeFactError.
 */
import fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import type { Digest } from '../../digest/index.js';
import { SkiffError, VerificationError } from '../../errors/index.js';
import { ContainersTarSplitCursor, END, SEGMENT } from '../../formats/containers-tar-split.js';
import type { LayerFormat, ZstdChunkedInfo } from '../../formats/detect.js';
import { normalizeEntryPath } from '../../formats/paths.js';
import {
  type ChunkedMetadata,
  decompressChunk,
  metadataRanges,
  parseChunkedMetadata,
  type TocFiles,
  TocUnverifiableError,
  type ValidatedToc,
} from '../../formats/zstd-chunked.js';
import {
  type ByteRange,
  batchRanges,
  coalesceRanges,
  PartTruncatedError,
  RangesNotHonouredError,
} from '../../ranges/index.js';
import {
  type ChunkRef,
  ingestLayer,
  type PieceLog,
  RebuildHasher,
  type RebuildPiece,
  type StagedLayer,
  type Store,
  type StoreSession,
} from '../../store/index.js';
import {
  type FetchSet,
  type PlannedChunk,
  type PlannedFile,
  planFetchSet,
} from '../../strategy/fetch-set.js';
import type { LayerDecision, RuntimeFacts, TocFacts } from '../../strategy/index.js';
import type { ImageSource } from '../../transport/index.js';
import { asBuffer } from '../../util/streams.js';
import { RuntimeFactError } from '../replan.js';
import type { ResolvedLayer } from '../resolve.js';
import { FileAssembler, type LocalChunk } from './assembler.js';
import type { LayerContext } from './context.js';
import { checkDiffID } from './layer-full.js';

export interface ChunkedLayer extends ChunkedMetadata {
  fetchSet: FetchSet;
  /** Where locally held chunks live, by chunk digest. */
  localChunks: ReadonlyMap<Digest, LocalChunk>;
  /**
   * Per TOC file, whether the store held its content when the plan was made: Store.findObject's
   * answer (a packed object's reference, LOOSE_OBJECT) or -1. The rebuild reads it instead of
   * looking every file up again.
   */
  heldObjects: Float64Array;
  /** Bytes fetched to read the TOC, tar-split and footer. */
  metadataBytes: number;
  /** Where fetched chunks are kept for a later pull if this one is interrupted. */
  pieces?: PieceLog | undefined;
  /** Compressed bytes the plan does not fetch because an interrupted pull already verified them. */
  resumedBytes: number;
}

export interface LoadedChunkedLayer {
  toc: TocFacts | undefined;
  chunked?: ChunkedLayer;
  runtime?: RuntimeFacts;
  metadataBytes: number;
}

/**
 * Requests in flight per layer, and ranges per request: servers limit header sizes, and 128 ranges
 * make a header of about 3 kB (containers/image sends up to 1024 in one request).
 */
const REQUESTS_IN_FLIGHT = 4;
const RANGES_PER_REQUEST = 128;
const BYTES_PER_REQUEST = 32 * 1024 * 1024;

/** Fetches and verifies a layer's TOC and tar-split, and works out what a partial pull would fetch. */
export async function loadChunkedLayer(
  source: ImageSource,
  layer: ResolvedLayer,
  format: LayerFormat,
  store: Store,
  signal: AbortSignal,
  pieces?: PieceLog,
): Promise<LoadedChunkedLayer> {
  const info = format.chunked as ZstdChunkedInfo;
  const wanted = coalesceRanges(metadataRanges(info, layer.size), { maxGap: 64 });
  const parts: Array<{ start: number; bytes: Buffer }> = [];
  let metadataBytes = 0;
  const collect = async (range: ByteRange, data: Readable) => {
    const bytes = await readExactly(data, range.end - range.start);
    metadataBytes += bytes.length;
    parts.push({ start: range.start, bytes });
  };
  let runtime: RuntimeFacts | undefined;
  try {
    try {
      await source.fetchRanges(layer, wanted, collect, signal);
    } catch (error) {
      if (!(error instanceof RangesNotHonouredError) || error.how === 'ignored') throw error;
      // One range per request still works: remember that for the file ranges too.
      runtime = { multiRangeRefused: true };
      for (const range of wanted.filter((r) => !parts.some((p) => p.start === r.start))) {
        await source.fetchRanges(layer, [range], collect, signal);
      }
    }
  } catch (error) {
    if (error instanceof RangesNotHonouredError && error.how === 'ignored')
      return { toc: undefined, runtime: { ...runtime, rangesIgnored: true }, metadataBytes };
    // Bytes that are not what was asked for (a lying Content-Range, a malformed or short answer)
    // leave the TOC unverified: a fact for the strategy module, not a failure of the pull.
    if (error instanceof VerificationError || error instanceof RangesNotHonouredError) {
      return {
        toc: { state: 'unverifiable', fetchBytes: 0, reuseBytes: 0, detail: error.message },
        ...(runtime ? { runtime } : {}),
        metadataBytes,
      };
    }
    if (error instanceof SkiffError) throw error.withContext({ digest: layer.digest });
    throw error;
  }
  let metadata: ChunkedMetadata;
  try {
    metadata = parseChunkedMetadata(info, layer.size, parts);
  } catch (error) {
    if (!(error instanceof TocUnverifiableError)) throw error;
    return {
      toc: { state: 'unverifiable', fetchBytes: 0, reuseBytes: 0, detail: error.message },
      ...(runtime ? { runtime } : {}),
      metadataBytes,
    };
  }
  const { available, locations, heldObjects } = availability(metadata.toc, store, pieces);
  const fetchSet = planFetchSet(metadata.toc, available);
  const fetchBytes = metadataBytes + fetchSet.rangeBytes;
  const resumedBytes = pieces ? heldBy(fetchSet, locations, pieces.dataPath) : 0;
  return {
    toc: { state: 'ok', fetchBytes, reuseBytes: Math.max(0, layer.size - fetchBytes) },
    chunked: {
      ...metadata,
      fetchSet,
      localChunks: locations,
      heldObjects,
      metadataBytes,
      pieces,
      resumedBytes,
    },
    ...(runtime ? { runtime } : {}),
    metadataBytes,
  };
}

/**
 * What the store already holds of this TOC's files and chunks, and what an interrupted pull of
 * this blob verified (its pieces: chunks, and single-chunk files, which are their one chunk).
 * Files are looked up by their raw digests, each answer kept as a number: a digest string, a
 * location object and a cache entry per file cost a 100k-file layer ~2 s of lookups, planning and
 * rebuild together (docs/performance.md, "Third round (2026-12-03, 09:50–10:50 UTC): lookups kept from the plan").
 */
function availability(toc: ValidatedToc, store: Store, pieces: PieceLog | undefined) {
  const files = toc.files;
  const heldFiles = new Uint8Array(files.length);
  const heldObjects = new Float64Array(files.length);
  const chunks = new Set<Digest>();
  const locations = new Map<Digest, LocalChunk>();
  for (let i = 0; i < files.length; i++) {
    const held = store.findObject(files.digestBytes(i), files.size(i));
    heldObjects[i] = held;
    if (held !== -1) {
      heldFiles[i] = 1;
      continue;
    }
    const multiChunk = files.chunkCount(i) > 1;
    if (!multiChunk && !pieces) continue;
    for (const chunk of files.at(i)!.chunks) {
      if (chunk.zeros || locations.has(chunk.digest)) continue;
      const found = (multiChunk ? storedChunk(store, chunk) : undefined) ?? resumedChunk(pieces, chunk);
      if (found && found.size === chunk.size) {
        chunks.add(chunk.digest);
        locations.set(chunk.digest, found);
      }
    }
  }
  return { available: { heldFiles, chunks }, locations, heldObjects };
}

function storedChunk(store: Store, chunk: { digest: Digest; size: number }): LocalChunk | undefined {
  const whole = store.locate(chunk.digest, chunk.size);
  return whole ? { location: whole, offset: 0, size: chunk.size } : store.findChunk(chunk.digest);
}

function resumedChunk(pieces: PieceLog | undefined, chunk: { digest: Digest; size: number }) {
  const location = pieces?.find(chunk.digest, chunk.size);
  return location ? { location, offset: 0, size: chunk.size } : undefined;
}

/** Compressed bytes of the planned chunks an interrupted pull's pieces hold (not fetched again). */
function heldBy(fetchSet: FetchSet, locations: ReadonlyMap<Digest, LocalChunk>, piecesPath: string): number {
  // Reading fetchSet.files builds an object per planned file (every file, in a fresh store): ~100
  // MiB of garbage for a 100k-file layer, whose V8 pages then stay resident for the whole pull
  // (docs/memory.md). Most pulls resume nothing, which the chunk locations alone tell.
  if (!holdsAny(locations, piecesPath)) return 0;
  let bytes = 0;
  for (const file of fetchSet.files)
    for (const chunk of file.chunks)
      if (chunk.source === 'local' && locations.get(chunk.digest)?.location.path === piecesPath)
        bytes += chunk.end - chunk.start;
  return bytes;
}

function holdsAny(locations: ReadonlyMap<Digest, LocalChunk>, path: string): boolean {
  for (const chunk of locations.values()) if (chunk.location.path === path) return true;
  return false;
}

/** Chunk references of a layer's files, for the store's chunk index (later partial pulls reuse them). */
export function chunkRefs(toc: ValidatedToc): ChunkRef[] {
  const refs: ChunkRef[] = [];
  for (let i = 0; i < toc.files.length; i++) {
    if (toc.files.chunkCount(i) < 2) continue;
    const f = toc.files.at(i)!;
    for (const c of f.chunks)
      refs.push({ digest: c.digest, object: f.digest, offset: c.chunkOffset, size: c.size });
  }
  return refs;
}

/** Digests of the TOC's files by path, consumed in tar order (a path may occur twice). */
export function tocDigestsByPath(toc: ValidatedToc): (path: string) => Digest | undefined {
  const next = tocFilesByPath(toc);
  return (path) => {
    const i = next(path);
    return i === undefined ? undefined : toc.files.digest(i);
  };
}

/**
 * The index of the TOC file of a path, each given out once, first unconsumed first (a path may
 * occur twice); no object is made for it.
 * The tar asks in the TOC's own order, so the next file in that order is nearly always the one:
 * a map of every path is built only for a tar that asks out of order (it cost a partial pull of
 * 100k files about 0.6 s for each of its two users).
 */
function tocFilesByPath(toc: ValidatedToc): (path: string) => number | undefined {
  const files = toc.files;
  const consumed = new Uint8Array(files.length);
  let cursor = 0;
  let byPath: Map<string, number[]> | undefined;
  return (path) => {
    while (cursor < files.length && consumed[cursor]) cursor++;
    if (cursor < files.length && files.path(cursor) === path) {
      consumed[cursor] = 1;
      return cursor++;
    }
    byPath ??= indexByPath(files);
    const queue = byPath.get(path);
    while (queue?.length && consumed[queue[0]!]) queue.shift();
    const found = queue?.shift();
    if (found === undefined) return undefined;
    consumed[found] = 1;
    return found;
  };
}

function indexByPath(files: TocFiles): Map<string, number[]> {
  const byPath = new Map<string, number[]>();
  for (let i = 0; i < files.length; i++) {
    const path = files.path(i);
    const queue = byPath.get(path);
    if (queue) queue.push(i);
    else byPath.set(path, [i]);
  }
  return byPath;
}

export async function pullPartial(
  ctx: LayerContext,
  chunked: ChunkedLayer,
  decision: LayerDecision,
): Promise<StagedLayer> {
  // Started first, so its thread is up by the time the fetch is done.
  const hasher = new RebuildHasher();
  let staged: StagedLayer;
  try {
    const cap = new PartialSizeCap(ctx.maxLayerSize, ctx.layer.digest);
    cap.checkFiles(chunked.toc);
    const assembler = new FileAssembler(ctx.session, chunked.fetchSet.files);
    await assembler.fillLocal(chunked.localChunks);
    await fetchMissing(ctx, chunked, assembler, decision.rangesPerRequest ?? RANGES_PER_REQUEST);
    assembler.assertComplete();
    await ctx.session.flushStaged();
    staged = await ingestLayer(rebuildTar(chunked, ctx.session, hasher, cap), {
      session: ctx.session,
      provenance: ctx.provenance,
      source: {
        blobDigest: ctx.layer.digest,
        mediaType: ctx.layer.mediaType,
        format: ctx.format.report,
        method: 'partial',
      },
      knownDigest: tocDigestsByPath(chunked.toc),
      // The rebuilt stream's DiffID is checked below: that covers every byte read from objects.
      trustKnownObjects: true,
      digestedBySource: () => hasher.finish(),
      chunks: () => chunkRefs(chunked.toc),
    });
  } catch (error) {
    if (error instanceof TocUnverifiableError)
      throw new RuntimeFactError({ tocUnverifiable: error.message }, error.message);
    throw error;
  } finally {
    await hasher.stop();
  }
  try {
    return checkDiffID(staged, ctx);
  } catch (error) {
    if (!(error instanceof VerificationError) || !ctx.layer.diffID) throw error;
    await fsp.rm(staged.dir, { recursive: true, force: true });
    throw new RuntimeFactError(
      { diffIDMismatch: { expected: ctx.layer.diffID, actual: staged.diffID } },
      error.message,
    );
  }
}

async function fetchMissing(
  ctx: LayerContext,
  chunked: ChunkedLayer,
  assembler: FileAssembler,
  rangesPerRequest: number,
): Promise<void> {
  const wanted = chunked.fetchSet.files.flatMap((file) =>
    file.chunks.filter((c) => c.source === 'fetch').map((chunk) => ({ file, chunk })),
  );
  wanted.sort((a, b) => a.chunk.start - b.chunk.start);
  const batches = batchRanges(chunked.fetchSet.ranges, {
    maxRangesPerRequest: rangesPerRequest,
    maxBytesPerRequest: BYTES_PER_REQUEST,
    spread: { requests: REQUESTS_IN_FLIGHT, minRanges: 16 },
  });
  const limit = pLimit(REQUESTS_IN_FLIGHT);
  const consume = async (range: ByteRange, data: Readable) => {
    const inside = chunksWithin(wanted, range);
    let counted = 0;
    await carveChunks(range, data, inside, async ({ file, chunk }, compressed) => {
      counted += compressed.length;
      ctx.fetched(compressed.length);
      const content = await decompressFetched(file, chunk, compressed);
      await assembler.put(file, chunk, content);
      // Verified by put(): kept for a later pull should this one be interrupted.
      await chunked.pieces?.append(chunk.digest, content);
    });
    // Gap bytes between chunks of a coalesced range were fetched too.
    ctx.fetched(range.end - range.start - counted);
  };
  // The first failure stops the other requests, and the assembler is only cleaned up once every
  // request has settled: a request still running would otherwise stage files after the cleanup.
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  let failure: { error: unknown } | undefined;
  await Promise.allSettled(
    batches.map((batch) =>
      limit(async () => {
        if (failure) return;
        try {
          await ctx.source.fetchRanges(ctx.layer, batch, consume, signal);
        } catch (error) {
          failure ??= { error };
          stop.abort(error);
        }
      }),
    ),
  );
  if (!failure) return;
  await assembler.abort();
  const { error } = failure;
  if (error instanceof RangesNotHonouredError) {
    const fact: RuntimeFacts =
      error.how === 'ignored' ? { rangesIgnored: true } : { multiRangeRefused: true };
    throw new RuntimeFactError(fact, error.message);
  }
  if (error instanceof SkiffError) throw error.withContext({ digest: ctx.layer.digest });
  throw error;
}

/** Decompresses a fetched chunk; a chunk that does not is named by its file, offset and blob range. */
async function decompressFetched(
  file: PlannedFile,
  chunk: PlannedChunk,
  compressed: Buffer,
): Promise<Buffer> {
  try {
    return await decompressChunk(compressed, chunk.size);
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    throw new VerificationError(
      `chunk of "${file.path}" at ${chunk.chunkOffset} (bytes ${chunk.start}-${chunk.end - 1} of the blob): ${error.message}`,
      { path: file.path },
      error,
    );
  }
}

type WantedChunk = { file: PlannedFile; chunk: PlannedChunk };

/** The chunks (sorted by start) that lie inside `range`: a binary search, not a scan per range. */
function chunksWithin(sorted: readonly WantedChunk[], range: ByteRange): WantedChunk[] {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.chunk.start < range.start) lo = mid + 1;
    else hi = mid;
  }
  const inside: WantedChunk[] = [];
  for (let i = lo; i < sorted.length && sorted[i]!.chunk.end <= range.end; i++) inside.push(sorted[i]!);
  return inside;
}

/**
 * Hands each chunk inside a fetched range to `onChunk` as one buffer, in order, skipping the gap
 * bytes between them. A loop rather than a stream per chunk: a partial pull fetches hundreds of
 * small chunks, and a stream each cost more than decompressing and hashing them.
 */
async function carveChunks(
  range: ByteRange,
  data: AsyncIterable<Buffer>,
  inside: readonly WantedChunk[],
  onChunk: (wanted: WantedChunk, compressed: Buffer) => Promise<void>,
): Promise<void> {
  let pos = range.start;
  let next = 0;
  let pieces: Buffer[] = [];
  for await (const bytes of data) {
    for (let offset = 0; offset < bytes.length && next < inside.length; ) {
      const wanted = inside[next]!;
      if (pos < wanted.chunk.start) {
        const skip = Math.min(wanted.chunk.start - pos, bytes.length - offset);
        pos += skip;
        offset += skip;
        continue;
      }
      const take = Math.min(wanted.chunk.end - pos, bytes.length - offset);
      pieces.push(bytes.subarray(offset, offset + take));
      pos += take;
      offset += take;
      if (pos === wanted.chunk.end) {
        const compressed = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
        pieces = [];
        next++;
        await onChunk(wanted, compressed);
      }
    }
  }
  if (next < inside.length) throw new PartTruncatedError(`range ${range.start}-${range.end} ended at ${pos}`);
}

/**
 * --max-layer-size for a partial pull: the files its TOC names are held to it before anything is
 * fetched (zero chunks cost nothing to send), and the tar its tar-split describes as the rebuild
 * goes, before any byte past the cap is written. The tar-split is in memory and its records hold
 * no content, so counting while rebuilding bounds as much as a pass of its own did, without
 * decoding it twice (a second pass cost about 1 s on 100k files).
 */
class PartialSizeCap {
  private tarBytes = 0;

  constructor(
    private readonly cap: number,
    private readonly digest: Digest,
  ) {}

  checkFiles(toc: ValidatedToc): void {
    this.check(toc.files.totalSize());
  }

  add(bytes: number): void {
    this.tarBytes += bytes;
    this.check(this.tarBytes);
  }

  private check(size: number): void {
    if (size <= this.cap) return;
    const message = `layer ${this.digest} decompresses to ${size} bytes by its TOC and tar-split, more than ${this.cap} bytes, the limit set by --max-layer-size`;
    throw new VerificationError(message, { digest: this.digest });
  }
}

/**
 * The original tar, rebuilt from the tar-split's segments and the objects the TOC names. The
 * ingest gets the segments and, for each file, only its size: the hasher reads and hashes the
 * objects on its own thread, in the same order, and the ingest takes the DiffID from it.
 * Synchronous: the tar-split is in memory, so the ingest pays no promise per piece. Call
 * session.flushStaged() first.
 */
function* rebuildTar(
  chunked: ChunkedLayer,
  session: StoreSession,
  hasher: RebuildHasher,
  cap: PartialSizeCap,
): Generator<RebuildPiece> {
  const next = tocFilesByPath(chunked.toc);
  const files = chunked.toc.files;
  // Packed content the plan found is where it was (gc waits for pulls); the rest (content this
  // pull staged, loose objects) is asked for by digest.
  const locate = (file: number, digest: Digest, size: number) => {
    const held = chunked.heldObjects[file]!;
    return held >= 0 ? session.store.packedLocation(held) : session.locate(digest, size);
  };
  const records = new ContainersTarSplitCursor(chunked.tarSplit);
  for (let kind = records.next(); kind !== END; kind = records.next()) {
    if (kind === SEGMENT) {
      const bytes = records.segment;
      cap.add(bytes.length);
      hasher.raw(bytes);
      yield bytes;
      continue;
    }
    const { name, size } = records;
    if (size === 0) continue;
    cap.add(size);
    const path = normalizeEntryPath(name, 'tar-split entry');
    const file = next(path);
    const digest = file === undefined ? undefined : files.digest(file);
    const location = digest && files.size(file!) === size ? locate(file!, digest, size) : undefined;
    if (!digest || !location) {
      throw new TocUnverifiableError(
        `tar-split names "${name}" (${size} bytes), which the TOC does not list with that size`,
      );
    }
    hasher.object(location);
    yield { held: size, digest };
    const behind = hasher.pace();
    if (behind) yield behind;
  }
}

async function readExactly(stream: AsyncIterable<Buffer | Uint8Array>, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of stream) {
    total += piece.length;
    if (total > length) throw new VerificationError(`range answer longer than the ${length} bytes asked for`);
    parts.push(asBuffer(piece));
  }
  if (total !== length)
    throw new VerificationError(`range answer has ${total} of the ${length} bytes asked for`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
