/**
 * zstd:chunked (docs/formats.md): the TOC, the footer, the tar-split, and bounded decompression of the
 * per-file frames. Two kinds of failure are kept apart on purpose:
 *  - TocUnverifiableError: the TOC or tar-split could not be fetched, decoded or matched to their
 *    digests. Not fatal: the strategy module falls back to a full pull (reason toc-unverifiable).
 *  - VerificationError: a TOC that verifies but describes something impossible or hostile
 *    (ranges outside the blob, overlaps, escaping names, sizes that do not add up): exit 4.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { type Digest, isDigest, sha256 } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import type { ZstdChunkedInfo } from './detect.js';
import { normalizeEntryPath, normalizeLinkTarget } from './paths.js';
import {
  type EntryIssue,
  entryIssue,
  type RawTocEntry,
  TOC_ENTRY_TYPES,
  type TocChunk,
  type TocFiles,
  TocFilesBuilder,
} from './zstd-chunked-toc.js';
import { zstdBinding } from './zstd-native.js';
import { ZstdDecompressStream } from './zstd-stream.js';

export class TocUnverifiableError extends Error {}

/** docs/design.md §10: a sane cap on sizes read from the blob itself. */
export const MAX_TOC_BYTES = 512 * 1024 * 1024;
export const MAX_TOC_ENTRIES = 10_000_000;
const FOOTER_CURRENT = 72;
const SKIPPABLE_HEADER = 8;

const OptionalDigest = z
  .string()
  .optional()
  .refine((v) => v === undefined || v === '' || isDigest(v), 'not a sha256 digest');

/**
 * One TOC entry (containers/storage's minimal.FileMetadata, docs/formats.md "zstd:chunked, current
 * generation"): every field the format has, in the order Go's encoder writes them. The one type of
 * a TOC entry: the reader validates with (part of) this schema and TocWriter writes exactly it.
 */
export const TocEntrySchema = z.object({
  type: z.enum(TOC_ENTRY_TYPES),
  name: z.string(),
  linkName: z.string().optional(),
  mode: z.number().int().optional(),
  size: z.number().int().nonnegative().optional(),
  uid: z.number().int().optional(),
  gid: z.number().int().optional(),
  modtime: z.string().optional(),
  accesstime: z.string().optional(),
  changetime: z.string().optional(),
  devMajor: z.number().int().optional(),
  devMinor: z.number().int().optional(),
  /** Extended attributes, name → base64 of the raw value. */
  xattrs: z.record(z.string(), z.string()).optional(),
  digest: OptionalDigest,
  offset: z.number().int().nonnegative().optional(),
  endOffset: z.number().int().nonnegative().optional(),
  chunkSize: z.number().int().nonnegative().optional(),
  chunkOffset: z.number().int().nonnegative().optional(),
  chunkDigest: OptionalDigest,
  chunkType: z.string().optional(),
});
export type TocEntry = z.infer<typeof TocEntrySchema>;

export type { RawTocEntry, TocChunk, TocFile } from './zstd-chunked-toc.js';
export { TocFiles, tocFilesOf } from './zstd-chunked-toc.js';

/** The TOC without its entries: they are read one at a time (readTocEntries). */
const TocHeadSchema = z.looseObject({
  version: z.literal(1),
  entries: z.array(z.never()),
  tarSplitDigest: OptionalDigest,
});

export interface ValidatedToc {
  /** Regular files with content, in TOC (tar) order, as columns (docs/memory.md). */
  files: TocFiles;
  entryCount: number;
  tarSplitDigest?: Digest | undefined;
}

export interface ChunkedMetadata {
  toc: ValidatedToc;
  /** The compressed tar-split, verified against the TOC's tarSplitDigest. */
  tarSplit: Buffer;
}

/**
 * Verifies and parses the metadata of a current-generation layer from the byte ranges read at the
 * positions its annotations give (see metadataRanges).
 */
export function parseChunkedMetadata(
  info: ZstdChunkedInfo,
  blobSize: number,
  fetched: ReadonlyArray<{ start: number; bytes: Buffer }>,
): ChunkedMetadata {
  const slice = (offset: number, length: number) => {
    const part = fetched.find((p) => p.start <= offset && offset + length <= p.start + p.bytes.length);
    if (!part) throw new TocUnverifiableError('metadata range not fetched');
    return part.bytes.subarray(offset - part.start, offset - part.start + length);
  };
  const tocCompressed = slice(info.toc.offset, info.toc.length);
  const actualTocDigest = sha256(tocCompressed);
  if (actualTocDigest !== info.tocDigest) {
    throw new TocUnverifiableError(
      `TOC digest mismatch: the annotation says ${info.tocDigest}, the blob holds ${actualTocDigest}`,
    );
  }
  checkFooter(info, blobSize, slice(blobSize - FOOTER_CURRENT, FOOTER_CURRENT));
  const toc = validateToc(
    decompressBounded(tocCompressed, info.toc.uncompressedLength, 'TOC'),
    info,
    blobSize,
  );
  if (!info.tarSplit) throw new TocUnverifiableError('no tar-split');
  const tarSplit = slice(info.tarSplit.offset, info.tarSplit.length);
  if (!toc.tarSplitDigest) throw new TocUnverifiableError('the TOC does not name its tar-split digest');
  const actualTarSplit = sha256(tarSplit);
  if (actualTarSplit !== toc.tarSplitDigest) {
    throw new TocUnverifiableError(
      `tar-split digest mismatch: the TOC says ${toc.tarSplitDigest}, the blob holds ${actualTarSplit}`,
    );
  }
  return { toc, tarSplit };
}

/** The byte ranges holding a layer's TOC, tar-split and footer. */
export function metadataRanges(
  info: ZstdChunkedInfo,
  blobSize: number,
): Array<{ start: number; end: number }> {
  const ranges = [{ start: info.toc.offset, end: info.toc.offset + info.toc.length }];
  if (info.tarSplit)
    ranges.push({ start: info.tarSplit.offset, end: info.tarSplit.offset + info.tarSplit.length });
  ranges.push({ start: Math.max(0, blobSize - FOOTER_CURRENT), end: blobSize });
  return ranges;
}

/** The footer repeats the annotations' numbers (docs/formats.md): trust the annotations, check they agree. */
function checkFooter(info: ZstdChunkedInfo, blobSize: number, footer: Buffer): void {
  if (blobSize < FOOTER_CURRENT || footer.readUInt32LE(0) !== 0x184d2a50 || footer.readUInt32LE(4) !== 64) {
    throw new TocUnverifiableError('footer missing or not a skippable frame');
  }
  const n = (i: number) => Number(footer.readBigUInt64LE(8 + i * 8));
  const expected = [
    info.toc.offset,
    info.toc.length,
    info.toc.uncompressedLength,
    info.toc.type,
    info.tarSplit?.offset ?? 0,
    info.tarSplit?.length ?? 0,
    info.tarSplit?.uncompressedLength ?? 0,
  ];
  if (footer.toString('latin1', 64, 72) !== 'GNUlInUx' || expected.some((value, i) => n(i) !== value)) {
    throw new TocUnverifiableError('footer disagrees with the annotations');
  }
}

/**
 * A TOC's JSON, read entry by entry: the entries are parsed and validated one at a time and
 * handed to `onEntry`, so the whole document never exists as objects, nor as one string (a
 * 120k-file TOC is 33 MB of JSON: parsed whole, with zod's validated copy beside it, ~250 MiB at
 * once). The rest of the document (version, tarSplitDigest) is parsed without its entries.
 */
function readTocJson(json: Buffer, onEntry: (entry: RawTocEntry) => void): TocHead {
  const span = entriesSpan(json);
  const head = span
    ? `${json.toString('utf8', 0, span.open)}[]${json.toString('utf8', span.close + 1)}`
    : json.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(head);
  } catch (error) {
    throw new TocUnverifiableError(`TOC is not JSON: ${(error as Error).message}`);
  }
  const parsedHead = TocHeadSchema.safeParse(value);
  if (!parsedHead.success) throw tocInvalid(parsedHead.error.issues[0], []);
  if (!span) throw new TocUnverifiableError('TOC does not validate: entries: not found');
  let count = 0;
  const take = (entry: unknown) => {
    if (count === MAX_TOC_ENTRIES) throw new TocUnverifiableError(`TOC has over ${MAX_TOC_ENTRIES} entries`);
    // Checked by hand, not by zod: the same verdicts and messages at a fraction of the cost.
    const issue = entryIssue(entry);
    if (issue) throw entryInvalid(issue, count);
    onEntry(entry as RawTocEntry);
    count++;
  };
  for (const batch of entryBatches(json, span.open, span.close)) {
    const entries = batch.parsed ?? [];
    for (const entry of entries) take(entry);
    if (batch.parsed) continue;
    // Not one JSON array (or not split where expected): entry by entry, which names what is wrong.
    for (const [from, to] of arrayElements(json, batch.from, batch.to)) {
      let entry: unknown;
      try {
        entry = JSON.parse(json.toString('utf8', from, to));
      } catch (error) {
        throw new TocUnverifiableError(`TOC is not JSON: entry ${count}: ${(error as Error).message}`);
      }
      take(entry);
    }
  }
  return { entryCount: count, tarSplitDigest: parsedHead.data.tarSplitDigest };
}

/**
 * About this many bytes of entries are parsed at once: ~100 entries' objects. Under V8's 128 KiB
 * large-object size on purpose: a batch's string in the large-object space survives until a full
 * GC, and a 33 MB TOC read in 128 KiB strings had put ~60 MiB of them on the heap at once.
 */
const BATCH_BYTES = 32 * 1024;

/**
 * The entries array (opening at `open`, closing at `close`) in batches of whole entries, each
 * parsed by one JSON.parse of `[…]`: a call per entry cost more than the parse itself. A batch
 * ends before a `},{`; one that does not parse (a split inside a string or a nested value cannot
 * parse either: a string or a bracket is left open) is handed back unparsed with the rest of the
 * array, `from` (the byte before its first element) to `close`, for the entry-by-entry reader to
 * read or refuse.
 */
function* entryBatches(
  json: Buffer,
  open: number,
  close: number,
): Generator<{ parsed: unknown[]; from?: never; to?: never } | { parsed?: never; from: number; to: number }> {
  let from = open; // the byte before the batch: `[` or the `,` between two entries
  while (from < close) {
    const split = from + BATCH_BYTES < close ? json.indexOf('},{', from + BATCH_BYTES) : -1;
    const to = split >= 0 && split < close ? split + 1 : close;
    let parsed: unknown;
    try {
      parsed = JSON.parse(`[${json.toString('utf8', from + 1, to)}]`);
    } catch {
      // The rest entry by entry: a split inside a string would leave the next batch mid-string.
      yield { from, to: close };
      return;
    }
    yield { parsed: parsed as unknown[] };
    from = to;
  }
}

interface TocHead {
  entryCount: number;
  tarSplitDigest?: string | undefined;
}

function entryInvalid(issue: EntryIssue, index: number): TocUnverifiableError {
  const path = ['entries', index, ...(issue.field === undefined ? [] : [issue.field])].join('.');
  return new TocUnverifiableError(`TOC does not validate: ${path}: ${issue.message}`);
}

function tocInvalid(issue: z.core.$ZodIssue | undefined, at: PropertyKey[]): TocUnverifiableError {
  const path = [...at, ...(issue?.path ?? [])].map(String).join('.');
  return new TocUnverifiableError(`TOC does not validate: ${path}: ${issue?.message}`);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** The index after the string whose opening quote is at `at` (the end of `json` if unclosed). */
function skipString(json: Buffer, at: number): number {
  let quote = json.indexOf(QUOTE, at + 1);
  for (; quote >= 0; quote = json.indexOf(QUOTE, quote + 1)) {
    let backslashes = 0;
    while (json[quote - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
  }
  return json.length;
}

/**
 * Where the top-level object's `entries` array opens and closes. Only brackets and strings are
 * followed: what lies between is checked by JSON.parse of the head and of each entry.
 */
function entriesSpan(json: Buffer): { open: number; close: number } | undefined {
  let depth = 0;
  let key: string | undefined;
  let lastString: string | undefined;
  let span: { open: number; close: number } | undefined;
  let open = -1;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i]!;
    if (byte === QUOTE) {
      const end = skipString(json, i);
      if (depth === 1) lastString = json.toString('utf8', i + 1, end - 1);
      i = end - 1;
    } else if (byte === COLON && depth === 1) {
      key = lastString;
    } else if (byte === 0x7b || byte === 0x5b) {
      if (depth === 1 && byte === 0x5b && key === 'entries') {
        if (span || open >= 0) throw new TocUnverifiableError('TOC names its entries twice');
        open = i;
      }
      depth++;
    } else if (byte === 0x7d || byte === 0x5d) {
      depth--;
      if (depth === 1 && open >= 0) {
        span = { open, close: i };
        open = -1;
      }
    }
  }
  return span;
}

/**
 * The [from, to) of each value in the array that opens at `open` and closes at `close`, checking
 * the commas between them (each value is checked by its own JSON.parse and schema).
 */
function* arrayElements(json: Buffer, open: number, close: number): Generator<[number, number]> {
  let expectValue = true;
  let values = 0;
  for (let i = open + 1; i < close; ) {
    const byte = json[i]!;
    if (isSpace(byte)) {
      i++;
    } else if (!expectValue) {
      if (byte !== COMMA) throw new TocUnverifiableError(`TOC is not JSON: "," expected at byte ${i}`);
      expectValue = true;
      i++;
    } else {
      if (byte === COMMA) throw new TocUnverifiableError(`TOC is not JSON: a value expected at byte ${i}`);
      const end = valueEnd(json, i, close);
      yield [i, end];
      i = end;
      expectValue = false;
      values++;
    }
  }
  if (expectValue && values > 0) throw new TocUnverifiableError('TOC is not JSON: its entries end in ","');
}

/** The index after the value that starts at `from`: an object, an array, a string or a bare word. */
function valueEnd(json: Buffer, from: number, limit: number): number {
  const first = json[from]!;
  if (first === QUOTE) return skipString(json, from);
  if (first !== 0x7b && first !== 0x5b) {
    let i = from;
    while (i < limit && json[i] !== COMMA && !isSpace(json[i]!)) i++;
    return i;
  }
  let depth = 0;
  for (let i = from; i < limit; i++) {
    const byte = json[i]!;
    if (byte === QUOTE) i = skipString(json, i) - 1;
    else if (byte === 0x7b || byte === 0x5b) depth++;
    else if ((byte === 0x7d || byte === 0x5d) && --depth === 0) return i + 1;
  }
  return limit;
}

/** Structural checks of a verified TOC; anything impossible is a hostile layer (exit 4). */
function validateToc(json: Buffer, info: ZstdChunkedInfo, blobSize: number): ValidatedToc {
  const dataEnd = info.toc.offset - SKIPPABLE_HEADER;
  const hostile = (why: string, path?: string) =>
    new VerificationError(`hostile zstd:chunked TOC: ${why}`, path ? { path } : {});
  const files = new TocFilesBuilder();
  // The open file: its entry (for its name and end), path and size; its chunks are the builder's last.
  let current: { raw: RawTocEntry; path: string; size: number; firstChunk: number } | undefined;
  const closeFile = () => {
    if (!current) return;
    const { raw, size, firstChunk } = current;
    const last = files.lastChunk();
    files.setChunkEnd(last.index, raw.endOffset!);
    const covered = last.chunkOffset + last.size;
    if (covered !== size)
      throw hostile(`chunks of "${raw.name}" cover ${covered} of ${size} bytes`, raw.name);
    for (let chunk = firstChunk; chunk <= last.index; chunk++) {
      if (files.chunkEnd(chunk) <= files.chunkStart(chunk))
        throw hostile(`empty or inverted range in "${raw.name}"`, raw.name);
    }
    current = undefined;
  };
  const onEntry = (entry: RawTocEntry) => {
    if (entry.type === 'chunk') {
      if (!current || normalizeEntryPath(entry.name, 'TOC entry') !== current.path) {
        throw hostile(`chunk of "${entry.name}" does not follow its file`, entry.name);
      }
      const previous = files.lastChunk();
      const chunk = readChunk(entry, previous.chunkOffset + previous.size, hostile);
      if (chunk.start < previous.start) throw hostile(`chunks of "${entry.name}" go backwards`, entry.name);
      files.setChunkEnd(previous.index, chunk.start);
      files.addChunk(chunk);
      return;
    }
    closeFile();
    const path = normalizeEntryPath(entry.name, 'TOC entry');
    if (entry.type === 'hardlink') normalizeLinkTarget(entry.linkName ?? '', entry.name);
    if (entry.type !== 'reg' || !entry.size) return;
    if (!entry.digest || entry.offset === undefined || entry.endOffset === undefined) {
      throw hostile(`file "${entry.name}" has content but no digest or range`, entry.name);
    }
    if (entry.endOffset > dataEnd || entry.offset >= entry.endOffset) {
      throw hostile(
        `file "${entry.name}" range ${entry.offset}-${entry.endOffset} is outside the data (${dataEnd} of ${blobSize} bytes)`,
        entry.name,
      );
    }
    const digest = entry.digest as Digest;
    current = { raw: entry, path, size: entry.size, firstChunk: files.chunks };
    files.addFile(path, entry.size, digest);
    files.addChunk({
      chunkOffset: 0,
      size: entry.chunkSize || entry.size,
      start: entry.offset,
      end: entry.endOffset,
      digest: (entry.chunkDigest || digest) as Digest,
      zeros: entry.chunkType === 'zeros',
    });
  };
  const head = readTocJson(json, onEntry);
  closeFile();
  const built = files.finish();
  checkNoOverlap(built, hostile);
  return {
    files: built,
    entryCount: head.entryCount,
    tarSplitDigest: (head.tarSplitDigest || undefined) as Digest | undefined,
  };
}

function readChunk(
  entry: RawTocEntry,
  expectedOffset: number,
  hostile: (why: string, path?: string) => Error,
): TocChunk {
  if (
    entry.offset === undefined ||
    !entry.chunkSize ||
    !entry.chunkDigest ||
    entry.chunkOffset === undefined
  ) {
    throw hostile(`chunk of "${entry.name}" lacks offset, size or digest`, entry.name);
  }
  if (entry.chunkOffset !== expectedOffset)
    throw hostile(`chunks of "${entry.name}" are not contiguous`, entry.name);
  return {
    chunkOffset: entry.chunkOffset,
    size: entry.chunkSize,
    start: entry.offset,
    end: entry.offset,
    digest: entry.chunkDigest as Digest,
    zeros: entry.chunkType === 'zeros',
  };
}

function checkNoOverlap(files: TocFiles, hostile: (why: string) => Error): void {
  // Writers lay the files out in TOC order: then one pass proves it, without a sorted copy.
  const chunks = files.chunkTotal;
  let end = 0;
  let inOrder = true;
  for (let k = 0; k < chunks && inOrder; k++) {
    if (files.chunkStart(k) < end) inOrder = false;
    end = files.chunkEnd(k);
  }
  if (inOrder) return;
  const order = new Uint32Array(chunks);
  for (let k = 0; k < chunks; k++) order[k] = k;
  order.sort((a, b) => files.chunkStart(a) - files.chunkStart(b));
  for (let i = 1; i < chunks; i++) {
    if (files.chunkStart(order[i]!) < files.chunkEnd(order[i - 1]!))
      throw hostile(`compressed ranges overlap at offset ${files.chunkStart(order[i]!)}`);
  }
}

/** One decompression context, reused: each call decompresses a whole buffer at once. */
let sharedDctx: InstanceType<ReturnType<typeof zstdBinding>['DCtx']> | undefined;
function dctx() {
  sharedDctx ??= new (zstdBinding().DCtx)();
  return sharedDctx;
}
/** Up to this size a frame is decompressed in one call into an exactly-sized buffer. */
const ONE_SHOT_LIMIT = 64 * 1024 * 1024;

/**
 * Decompresses zstd frames whose output must be exactly `expected` bytes. The output buffer has
 * that size, so a frame that claims more fails instead of ballooning (a decompression bomb).
 */
export function decompressBounded(compressed: Buffer, expected: number, what: string): Buffer {
  if (expected > MAX_TOC_BYTES)
    throw new TocUnverifiableError(`${what} claims ${expected} bytes, over the limit`);
  const out = Buffer.allocUnsafe(expected);
  let written: number;
  try {
    written = dctx().decompress(out, compressed);
  } catch (error) {
    throw new TocUnverifiableError(`${what} does not decompress: ${(error as Error).message}`);
  }
  if (written !== expected)
    throw new TocUnverifiableError(`${what} decompresses to ${written} bytes, not ${expected}`);
  return out;
}

/** Decompresses one chunk's frame(s) and checks its size; the caller checks its digest. */
export async function decompressChunk(compressed: Buffer, size: number): Promise<Buffer> {
  if (size <= ONE_SHOT_LIMIT) {
    const out = Buffer.allocUnsafe(size);
    let written: number;
    try {
      written = dctx().decompress(out, compressed);
    } catch (error) {
      throw new VerificationError(
        `chunk does not decompress to its ${size} bytes: ${(error as Error).message}`,
      );
    }
    if (written !== size) throw new VerificationError(`chunk decompresses to ${written} bytes, not ${size}`);
    return out;
  }
  // Very large chunks are rare; stream them with a running bound instead of one huge allocation.
  const parts: Buffer[] = [];
  let total = 0;
  for await (const part of Readable.from([compressed]).pipe(
    new ZstdDecompressStream(),
  ) as AsyncIterable<Buffer>) {
    total += part.length;
    if (total > size) throw new VerificationError(`chunk decompresses to more than its ${size} bytes`);
    parts.push(part);
  }
  if (total !== size) throw new VerificationError(`chunk decompresses to ${total} bytes, not ${size}`);
  return Buffer.concat(parts);
}

/** One record of the containers tar-split format (docs/formats.md). */
export type TarSplitEntry = { kind: 'segment'; bytes: Buffer } | { kind: 'file'; name: string; size: number };

/**
 * Reads a compressed tar-split record by record, checking each line's shape. Synchronous and
 * streaming: the zstd stream is decompressed a window at a time, so memory stays bounded by the
 * longest line however many entries the layer has.
 */
export function* readContainersTarSplit(compressed: Buffer): Generator<TarSplitEntry> {
  let lineNumber = 0;
  for (const line of zstdLines(compressed)) {
    lineNumber++;
    if (line.length === 0) continue;
    let record: { type?: unknown; name?: unknown; size?: unknown; payload?: unknown };
    try {
      record = JSON.parse(line.toString('utf8'));
    } catch {
      throw new TocUnverifiableError(`tar-split line ${lineNumber} is not JSON`);
    }
    if (record.type === 2 && typeof record.payload === 'string') {
      yield { kind: 'segment', bytes: Buffer.from(record.payload, 'base64') };
    } else if (record.type === 1 && typeof record.name === 'string') {
      const size = record.size === undefined ? 0 : record.size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
        throw new TocUnverifiableError(`tar-split line ${lineNumber}: bad size`);
      yield { kind: 'file', name: record.name, size };
    } else {
      throw new TocUnverifiableError(`tar-split line ${lineNumber} has an unknown shape`);
    }
  }
}

const LINE_WINDOW = 1024 * 1024;
/** A tar-split line holds at most one entry's headers (extension records are bounded at 1 MiB). */
const MAX_LINE = 8 * 1024 * 1024;

/** The lines of a zstd stream, decompressed a window at a time. */
function* zstdLines(compressed: Buffer): Generator<Buffer> {
  const ctx = new (zstdBinding().DCtx)();
  const window = Buffer.allocUnsafe(LINE_WINDOW);
  let input = compressed;
  let carry = Buffer.alloc(0);
  let frameOpen = true;
  for (;;) {
    let produced: number;
    try {
      const [left, written, consumed] = ctx.decompressStream(window, input);
      frameOpen = left !== 0;
      produced = written;
      input = input.subarray(consumed);
    } catch (error) {
      throw new TocUnverifiableError(`tar-split does not decompress: ${(error as Error).message}`);
    }
    // A copy: the window is reused by the next call.
    const text = Buffer.concat([carry, window.subarray(0, produced)]);
    let from = 0;
    for (let newline = text.indexOf(0x0a); newline >= 0; newline = text.indexOf(0x0a, from)) {
      yield text.subarray(from, newline);
      from = newline + 1;
    }
    carry = text.subarray(from);
    if (carry.length > MAX_LINE)
      throw new TocUnverifiableError(`tar-split has a line over ${MAX_LINE} bytes`);
    if (input.length === 0 && produced < window.length) break;
  }
  if (frameOpen) throw new TocUnverifiableError('tar-split ends inside its zstd frame');
  if (carry.length > 0) yield carry;
}

/** The older generation (skopeo 1.9): a 48-byte footer ending in `GnUlInUx`, no tar-split. */
export const LEGACY_FOOTER = 48;

export function checkLegacyFooter(info: ZstdChunkedInfo, footer: Buffer): void {
  const n = (i: number) => Number(footer.readBigUInt64LE(8 + i * 8));
  if (
    footer.length !== LEGACY_FOOTER ||
    footer.readUInt32LE(0) !== 0x184d2a50 ||
    footer.readUInt32LE(4) !== 40 ||
    footer.toString('latin1', 40, 48) !== 'GnUlInUx' ||
    n(0) !== info.toc.offset ||
    n(1) !== info.toc.length ||
    n(2) !== info.toc.uncompressedLength ||
    n(3) !== info.toc.type
  ) {
    throw new TocUnverifiableError('legacy footer disagrees with the annotations');
  }
}

/** Counts a verified TOC's entries without the structural checks a partial pull needs. */
export function countTocEntries(compressed: Buffer, info: ZstdChunkedInfo): number {
  const actual = sha256(compressed);
  if (actual !== info.tocDigest)
    throw new TocUnverifiableError(
      `TOC digest mismatch: the annotation says ${info.tocDigest}, the blob holds ${actual}`,
    );
  return readTocJson(decompressBounded(compressed, info.toc.uncompressedLength, 'TOC'), () => {}).entryCount;
}
