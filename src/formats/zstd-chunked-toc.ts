/**
 * A zstd:chunked TOC's files and chunks as columns (docs/memory.md): typed arrays of numbers, every
 * digest once as 32 bytes in one buffer, every path as bytes in another. A 100k-file TOC is a
 * handful of objects instead of ~1M (a `TocFile`, its `chunks` array, a `TocChunk` and their
 * strings per file: ~390 B per file, and work for every full GC); `TocFile`/`TocChunk` objects are
 * made on demand, for the few files a caller looks at as objects.
 *
 * Also the check of one TOC entry's fields: the verdicts and messages of `TocEntrySchema` (zod),
 * written out, because zod per entry was most of a big TOC's parse time.
 */
import { randomInt } from 'node:crypto';
import type { Digest } from '../digest/index.js';

export interface TocChunk {
  /** Position of this chunk inside the file's content. */
  chunkOffset: number;
  size: number;
  /** The chunk's compressed frame(s) in the blob: [start, end). */
  start: number;
  end: number;
  /** sha256 of the chunk's uncompressed bytes (the file digest for a single-chunk file). */
  digest: Digest;
  zeros: boolean;
}

export interface TocFile {
  /** Normalised path. */
  path: string;
  size: number;
  digest: Digest;
  chunks: TocChunk[];
}

const DIGEST_BYTES = 32;
const DIGEST_PREFIX = 'sha256:';
/** A path that is not well-formed UTF-16 (a lone surrogate, from a `\ud800` escape) is kept as UTF-16. */
const PATH_UTF16 = 1;

interface Columns {
  files: number;
  /** Per file: where its path's bytes end in `pathBytes` (they start where the previous one's end). */
  pathEnd: Uint32Array;
  pathBytes: Buffer;
  /** Per file: PATH_UTF16 when its path is stored as UTF-16LE, else 0 (UTF-8). */
  pathFlags: Uint8Array;
  size: Float64Array;
  /** Per file: index into `digests` (equal content, equal index). */
  digest: Uint32Array;
  /** Per file + 1: its first chunk; a file's chunks are firstChunk[i] .. firstChunk[i + 1]. */
  firstChunk: Uint32Array;
  chunks: number;
  chunkOffset: Float64Array;
  chunkSize: Float64Array;
  chunkStart: Float64Array;
  chunkEnd: Float64Array;
  chunkDigest: Uint32Array;
  chunkZeros: Uint8Array;
  /** Distinct digests, 32 bytes each. */
  digests: Buffer;
  digestCount: number;
}

/**
 * The regular files with content of a TOC, in TOC (tar) order; duplicates of a path keep their
 * order. Indexed: `path(i)`, `size(i)`, `digest(i)`; chunks by their own index (`firstChunk(i)`,
 * `chunkCount(i)`); `at(i)` and iteration make `TocFile` objects.
 */
export class TocFiles implements Iterable<TocFile> {
  static readonly empty = new TocFiles(emptyColumns());

  /** @internal Built by TocFilesBuilder. */
  constructor(private readonly c: Columns) {}

  get length(): number {
    return this.c.files;
  }

  /** Distinct content digests: `digestIndex` is below this. */
  get digestCount(): number {
    return this.c.digestCount;
  }

  /** Chunks of all files: chunk indexes are below this. */
  get chunkTotal(): number {
    return this.c.chunks;
  }

  path(i: number): string {
    const start = i === 0 ? 0 : this.c.pathEnd[i - 1]!;
    const encoding = this.c.pathFlags[i] === PATH_UTF16 ? 'utf16le' : 'utf8';
    return this.c.pathBytes.toString(encoding, start, this.c.pathEnd[i]!);
  }

  size(i: number): number {
    return this.c.size[i]!;
  }

  digest(i: number): Digest {
    return this.digestAt(this.c.digest[i]!);
  }

  /** The file's sha256 as its 32 raw bytes (a view: not to be kept or changed). */
  digestBytes(i: number): Buffer {
    const at = this.c.digest[i]! * DIGEST_BYTES;
    return this.c.digests.subarray(at, at + DIGEST_BYTES);
  }

  /** The file's content as a number: two files have the same index exactly when their digests are equal. */
  digestIndex(i: number): number {
    return this.c.digest[i]!;
  }

  firstChunk(i: number): number {
    return this.c.firstChunk[i]!;
  }

  chunkCount(i: number): number {
    return this.c.firstChunk[i + 1]! - this.c.firstChunk[i]!;
  }

  chunkStart(chunk: number): number {
    return this.c.chunkStart[chunk]!;
  }

  chunkEnd(chunk: number): number {
    return this.c.chunkEnd[chunk]!;
  }

  chunkZeros(chunk: number): boolean {
    return this.c.chunkZeros[chunk] === 1;
  }

  chunkDigestIndex(chunk: number): number {
    return this.c.chunkDigest[chunk]!;
  }

  chunk(chunk: number): TocChunk {
    const c = this.c;
    return {
      chunkOffset: c.chunkOffset[chunk]!,
      size: c.chunkSize[chunk]!,
      start: c.chunkStart[chunk]!,
      end: c.chunkEnd[chunk]!,
      digest: this.digestAt(c.chunkDigest[chunk]!),
      zeros: c.chunkZeros[chunk] === 1,
    };
  }

  /** The file as an object (made now: keep it only as long as it is used). */
  at(i: number): TocFile | undefined {
    if (!(i >= 0 && i < this.c.files)) return undefined;
    const chunks: TocChunk[] = [];
    for (let k = this.c.firstChunk[i]!; k < this.c.firstChunk[i + 1]!; k++) chunks.push(this.chunk(k));
    return { path: this.path(i), size: this.size(i), digest: this.digest(i), chunks };
  }

  *[Symbol.iterator](): Iterator<TocFile> {
    for (let i = 0; i < this.c.files; i++) yield this.at(i)!;
  }

  /** The sum of the files' sizes. */
  totalSize(): number {
    let sum = 0;
    for (let i = 0; i < this.c.files; i++) sum += this.c.size[i]!;
    return sum;
  }

  /**
   * The files' paths, sizes and digests without their chunks (each file then has none): what a
   * layer pulled in full still asks of its TOC, in less than half the memory (docs/memory.md).
   */
  withoutChunks(): TocFiles {
    const c = this.c;
    const empty = emptyColumns();
    return new TocFiles({
      ...empty,
      files: c.files,
      pathEnd: c.pathEnd,
      pathBytes: c.pathBytes,
      pathFlags: c.pathFlags,
      size: c.size,
      digest: c.digest,
      firstChunk: new Uint32Array(c.files + 1),
      digests: c.digests,
      digestCount: c.digestCount,
    });
  }

  /** Bytes held by the columns (docs/memory.md). */
  byteLength(): number {
    const c = this.c;
    return [
      c.pathEnd,
      c.pathBytes,
      c.pathFlags,
      c.size,
      c.digest,
      c.firstChunk,
      c.chunkOffset,
      c.chunkSize,
      c.chunkStart,
      c.chunkEnd,
      c.chunkDigest,
      c.chunkZeros,
      c.digests,
    ].reduce((sum, column) => sum + column.byteLength, 0);
  }

  private digestAt(index: number): Digest {
    const at = index * DIGEST_BYTES;
    return `${DIGEST_PREFIX}${this.c.digests.toString('hex', at, at + DIGEST_BYTES)}` as Digest;
  }
}

type Growable = Float64Array | Uint32Array | Uint8Array;

/** `array`, or a copy with room for at least `length` elements (doubling: amortised O(1) appends). */
function room<A extends Growable>(array: A, length: number): A {
  if (length <= array.length) return array;
  const next = new (array.constructor as new (n: number) => A)(Math.max(length, array.length * 2, 64));
  next.set(array);
  return next;
}

function roomBytes(buffer: Buffer, length: number): Buffer {
  if (length <= buffer.length) return buffer;
  const next = Buffer.allocUnsafe(Math.max(length, buffer.length * 2, 4096));
  buffer.copy(next);
  return next;
}

function emptyColumns(): Columns {
  return {
    files: 0,
    pathEnd: new Uint32Array(0),
    pathBytes: Buffer.alloc(0),
    pathFlags: new Uint8Array(0),
    size: new Float64Array(0),
    digest: new Uint32Array(0),
    firstChunk: new Uint32Array(1),
    chunks: 0,
    chunkOffset: new Float64Array(0),
    chunkSize: new Float64Array(0),
    chunkStart: new Float64Array(0),
    chunkEnd: new Float64Array(0),
    chunkDigest: new Uint32Array(0),
    chunkZeros: new Uint8Array(0),
    digests: Buffer.alloc(0),
    digestCount: 0,
  };
}

/**
 * Appends files and their chunks, in order; `finish` trims the columns to their length. Digests
 * are stored once each: an open-addressing table of digest indexes, keyed by a seeded hash of the
 * whole digest, finds an equal one already stored. (A TOC's digests are claims, not yet checked
 * against any content: keyed by their first bytes, a TOC of digests alike there would make every
 * lookup a walk through the table.)
 */
export class TocFilesBuilder {
  private c = emptyColumns();
  private table = new Uint32Array(1024).fill(EMPTY);
  private pathLength = 0;
  /** The last digest looked up, and its index: a single-chunk file's chunk has its file's digest. */
  private lastDigest = '';
  private lastDigestIndex = 0;

  get files(): number {
    return this.c.files;
  }

  get chunks(): number {
    return this.c.chunks;
  }

  /** Starts a file; its chunks follow with addChunk. */
  addFile(path: string, size: number, digest: Digest): void {
    const c = this.c;
    const i = c.files;
    c.pathEnd = room(c.pathEnd, i + 1);
    c.pathFlags = room(c.pathFlags, i + 1);
    c.size = room(c.size, i + 1);
    c.digest = room(c.digest, i + 1);
    c.firstChunk = room(c.firstChunk, i + 2);
    const utf16 = !isWellFormed(path);
    // Room for the longest encoding (3 UTF-8 bytes per UTF-16 unit), not a count of the bytes first.
    c.pathBytes = roomBytes(c.pathBytes, this.pathLength + path.length * 3);
    this.pathLength += c.pathBytes.write(path, this.pathLength, utf16 ? 'utf16le' : 'utf8');
    c.pathEnd[i] = this.pathLength;
    c.pathFlags[i] = utf16 ? PATH_UTF16 : 0;
    c.size[i] = size;
    c.digest[i] = this.digestIndex(digest);
    c.firstChunk[i] = c.chunks;
    c.firstChunk[i + 1] = c.chunks;
    c.files++;
  }

  /** Adds a chunk to the file added last. */
  addChunk(chunk: TocChunk): void {
    const c = this.c;
    const k = c.chunks;
    c.chunkOffset = room(c.chunkOffset, k + 1);
    c.chunkSize = room(c.chunkSize, k + 1);
    c.chunkStart = room(c.chunkStart, k + 1);
    c.chunkEnd = room(c.chunkEnd, k + 1);
    c.chunkDigest = room(c.chunkDigest, k + 1);
    c.chunkZeros = room(c.chunkZeros, k + 1);
    c.chunkOffset[k] = chunk.chunkOffset;
    c.chunkSize[k] = chunk.size;
    c.chunkStart[k] = chunk.start;
    c.chunkEnd[k] = chunk.end;
    c.chunkDigest[k] = this.digestIndex(chunk.digest);
    c.chunkZeros[k] = chunk.zeros ? 1 : 0;
    c.chunks++;
    c.firstChunk[c.files] = c.chunks;
  }

  /** The last chunk added: its end is set once the next chunk's start is known. */
  lastChunk(): { index: number; chunkOffset: number; size: number; start: number } {
    const k = this.c.chunks - 1;
    return {
      index: k,
      chunkOffset: this.c.chunkOffset[k]!,
      size: this.c.chunkSize[k]!,
      start: this.c.chunkStart[k]!,
    };
  }

  setChunkEnd(chunk: number, end: number): void {
    this.c.chunkEnd[chunk] = end;
  }

  chunkStart(chunk: number): number {
    return this.c.chunkStart[chunk]!;
  }

  chunkEnd(chunk: number): number {
    return this.c.chunkEnd[chunk]!;
  }

  finish(): TocFiles {
    const c = this.c;
    const files = new TocFiles({
      ...c,
      pathEnd: c.pathEnd.slice(0, c.files),
      pathBytes: Buffer.from(c.pathBytes.subarray(0, this.pathLength)),
      pathFlags: c.pathFlags.slice(0, c.files),
      size: c.size.slice(0, c.files),
      digest: c.digest.slice(0, c.files),
      firstChunk: c.firstChunk.slice(0, c.files + 1),
      chunkOffset: c.chunkOffset.slice(0, c.chunks),
      chunkSize: c.chunkSize.slice(0, c.chunks),
      chunkStart: c.chunkStart.slice(0, c.chunks),
      chunkEnd: c.chunkEnd.slice(0, c.chunks),
      chunkDigest: c.chunkDigest.slice(0, c.chunks),
      chunkZeros: c.chunkZeros.slice(0, c.chunks),
      digests: Buffer.from(c.digests.subarray(0, c.digestCount * DIGEST_BYTES)),
    });
    this.c = emptyColumns();
    this.table = new Uint32Array(1024).fill(EMPTY);
    this.pathLength = 0;
    this.lastDigest = '';
    return files;
  }

  /** The index of `digest` in the digest buffer, added if new. */
  private digestIndex(digest: Digest): number {
    if (digest === this.lastDigest) return this.lastDigestIndex;
    this.lastDigest = digest;
    this.lastDigestIndex = this.lookUpDigest(digest);
    return this.lastDigestIndex;
  }

  private lookUpDigest(digest: Digest): number {
    const c = this.c;
    const at = c.digestCount * DIGEST_BYTES;
    c.digests = roomBytes(c.digests, at + DIGEST_BYTES);
    // Written where a new digest would go, then looked up: equal to a stored one, it is not kept.
    writeHex(c.digests, at, digest, DIGEST_PREFIX.length);
    const mask = this.table.length - 1;
    for (let slot = digestHash(c.digests, at) & mask; ; slot = (slot + 1) & mask) {
      const index = this.table[slot]!;
      if (index === EMPTY) break;
      if (sameDigest(c.digests, at, index * DIGEST_BYTES)) return index;
    }
    const index = c.digestCount++;
    if (c.digestCount * 2 > this.table.length) this.rehash();
    else this.insert(index);
    return index;
  }

  private insert(index: number): void {
    const mask = this.table.length - 1;
    let slot = digestHash(this.c.digests, index * DIGEST_BYTES) & mask;
    while (this.table[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.table[slot] = index;
  }

  private rehash(): void {
    this.table = new Uint32Array(this.table.length * 2).fill(EMPTY);
    for (let index = 0; index < this.c.digestCount; index++) this.insert(index);
  }
}

const EMPTY = 0xffffffff;

/** Hex digits by character code (lower case, as a validated digest has them); 255 for others. */
const HEX = new Uint8Array(128).fill(255);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i;

/**
 * The 32 bytes `text` spells in hex from `from` on, written at `at`: a loop, not Buffer#write,
 * whose call costs more than the work for 32 bytes. `text` is a validated digest.
 */
function writeHex(bytes: Buffer, at: number, text: string, from: number): void {
  for (let i = 0; i < DIGEST_BYTES; i++)
    bytes[at + i] = (HEX[text.charCodeAt(from + 2 * i)]! << 4) | HEX[text.charCodeAt(from + 2 * i + 1)]!;
}

/** Whether `text` is `sha256:` and 64 lower-case hex digits (isDigest, without a regular expression). */
export function isSha256Digest(text: string): boolean {
  if (text.length !== DIGEST_PREFIX.length + 2 * DIGEST_BYTES || !text.startsWith(DIGEST_PREFIX))
    return false;
  for (let i = DIGEST_PREFIX.length; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 128 || HEX[code] === 255) return false;
  }
  return true;
}

/** A per-process seed: which digests share a slot cannot be planned by whoever wrote the TOC. */
const SEED = randomInt(2 ** 31);

/** A hash of the 32 bytes at `at`, mixing every byte with the seed. */
function digestHash(bytes: Buffer, at: number): number {
  let h = SEED;
  for (let i = 0; i < DIGEST_BYTES; i += 4) {
    h = Math.imul(h ^ bytes.readUInt32LE(at + i), 0x9e3779b1);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/** A loop, not Buffer#compare: digests that differ nearly always differ in their first byte. */
function sameDigest(bytes: Buffer, a: number, b: number): boolean {
  for (let i = 0; i < DIGEST_BYTES; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

/** String.prototype.isWellFormed (ES2024, in every Node skiff runs on; not in this TypeScript lib). */
const isWellFormed = (text: string) => (text as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Builds the columns of files given as objects (tests, and callers that have a handful). */
export function tocFilesOf(files: readonly TocFile[]): TocFiles {
  const builder = new TocFilesBuilder();
  for (const file of files) {
    builder.addFile(file.path, file.size, file.digest);
    for (const chunk of file.chunks) builder.addChunk(chunk);
  }
  return builder.finish();
}

/** The fields of a TOC entry the reader uses (containers/storage's minimal.FileMetadata). */
export interface RawTocEntry {
  type: TocEntryType;
  name: string;
  linkName?: string | undefined;
  mode?: number | undefined;
  size?: number | undefined;
  digest?: string | undefined;
  offset?: number | undefined;
  endOffset?: number | undefined;
  chunkSize?: number | undefined;
  chunkOffset?: number | undefined;
  chunkDigest?: string | undefined;
  chunkType?: string | undefined;
}

export const TOC_ENTRY_TYPES = [
  'reg',
  'dir',
  'symlink',
  'hardlink',
  'fifo',
  'char',
  'block',
  'chunk',
] as const;
export type TocEntryType = (typeof TOC_ENTRY_TYPES)[number];
const ENTRY_TYPES: ReadonlySet<unknown> = new Set(TOC_ENTRY_TYPES);

/** Why one field of an entry does not validate: its name and zod's message for it. */
export interface EntryIssue {
  field?: string;
  message: string;
}

/**
 * Checks a parsed TOC entry as `TocEntrySchema` (the fields the reader uses) would, and gives the
 * first issue zod would report, with zod's message, or undefined when the entry is valid. Fields
 * are checked in the schema's order; other fields are ignored (zod strips them).
 * test/unit/zstd-chunked-toc.test.ts holds it to zod's verdicts.
 */
export function entryIssue(value: unknown): EntryIssue | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { message: expected('object', value) };
  const entry = value as Record<string, unknown>;
  if (!ENTRY_TYPES.has(entry.type)) return { field: 'type', message: TYPE_MESSAGE };
  if (typeof entry.name !== 'string') return { field: 'name', message: expected('string', entry.name) };
  return (
    optionalString(entry, 'linkName') ??
    optionalInt(entry, 'mode', false) ??
    optionalInt(entry, 'size', true) ??
    optionalDigest(entry, 'digest') ??
    optionalInt(entry, 'offset', true) ??
    optionalInt(entry, 'endOffset', true) ??
    optionalInt(entry, 'chunkSize', true) ??
    optionalInt(entry, 'chunkOffset', true) ??
    (entry.chunkDigest === entry.digest ? undefined : optionalDigest(entry, 'chunkDigest')) ??
    optionalString(entry, 'chunkType')
  );
}

const TYPE_MESSAGE = `Invalid option: expected one of ${TOC_ENTRY_TYPES.map((t) => JSON.stringify(t)).join('|')}`;

function optionalString(entry: Record<string, unknown>, field: string): EntryIssue | undefined {
  const value = entry[field];
  if (value === undefined || typeof value === 'string') return undefined;
  return { field, message: expected('string', value) };
}

function optionalDigest(entry: Record<string, unknown>, field: string): EntryIssue | undefined {
  const value = entry[field];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') return { field, message: expected('string', value) };
  return isSha256Digest(value) ? undefined : { field, message: 'not a sha256 digest' };
}

function optionalInt(
  entry: Record<string, unknown>,
  field: string,
  nonnegative: boolean,
): EntryIssue | undefined {
  const value = entry[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value))
    return { field, message: expected('number', value) };
  if (!Number.isInteger(value)) return { field, message: 'Invalid input: expected int, received number' };
  if (value > Number.MAX_SAFE_INTEGER)
    return { field, message: `Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}` };
  if (value < Number.MIN_SAFE_INTEGER)
    return { field, message: `Too small: expected int to be >=${Number.MIN_SAFE_INTEGER}` };
  if (nonnegative && value < 0) return { field, message: 'Too small: expected number to be >=0' };
  return undefined;
}

/** zod's message for a value of the wrong type, naming what it received as zod does. */
function expected(type: string, value: unknown): string {
  return `Invalid input: expected ${type}, received ${receivedType(value)}`;
}

function receivedType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value;
}
