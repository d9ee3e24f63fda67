/**
 * A streaming tar reader that keeps every byte: headers, extension records and padding come out as
 * `raw` tokens and file contents as `data` tokens, in order, so concatenating all tokens gives back
 * the exact input stream. That is what lets skiff store a layer file by file and still rebuild the
 * original tar (and its DiffID) byte for byte. Handles ustar, GNU (long names, base-256 numbers)
 * and PAX headers, and reads them as Go's archive/tar does (what Docker, containerd and
 * containers/storage unpack with): a GNU long name or link wins over a PAX path or linkpath, and a
 * global PAX header is checked but not applied to the entries after it.
 */
import { VerificationError } from '../errors/index.js';
import { asBuffer } from '../util/streams.js';
import {
  BLOCK,
  checkChecksum,
  cString,
  ENTRY_TYPES,
  type EntryType,
  fieldText,
  GNU_LONG_NAME,
  headerPathText,
  isExtensionType,
  isZeroBlock,
  MAX_EXTENSION_BYTES,
  type NumericField,
  PAX_GLOBAL,
  PAX_LOCAL,
  parsePax,
  printable,
  readNumber,
  typeflagOf,
} from './tar-header.js';

export type { EntryType };

export interface TarEntry {
  /** Path as written in the archive (after PAX/GNU long-name resolution), not yet normalised. */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Content bytes that follow the header (0 for everything but regular files). */
  size: number;
  /** Seconds since the epoch; PAX may give fractions. */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX SCHILY.xattr.* records, values as raw bytes. */
  xattrs: Record<string, Buffer>;
}

export type TarToken =
  | { kind: 'raw'; bytes: Buffer }
  | { kind: 'entry'; entry: TarEntry }
  | { kind: 'data'; bytes: Buffer }
  /** A file's whole content, not passed through the tokenizer (see TarTokenizer.held). */
  | { kind: 'held'; size: number; id: string }
  | { kind: 'end-entry' };

/** Accumulates input and hands out exact byte counts without copying more than needed. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  /** The buffer behind the oldest bytes still queued (they are views of it). */
  get oldest(): ArrayBufferLike | undefined {
    return this.chunks[0]?.buffer;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns exactly n bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      this.length -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0]!;
      const part = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, part);
      filled += part;
      if (part === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(part);
    }
    this.length -= n;
    return out;
  }

  /** The first n bytes (n <= length) without removing them; a copy only when they straddle chunks. */
  peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const chunk of this.chunks) {
      if (filled === n) break;
      filled += chunk.copy(out, filled, 0, Math.min(chunk.length, n - filled));
    }
    return out;
  }

  /** Removes and returns up to n bytes from the first chunk (for streaming data without copies). */
  takeSome(n: number): Buffer {
    const first = this.chunks[0]!;
    return this.take(Math.min(n, first.length));
  }

  takeAll(): Buffer[] {
    const all = this.chunks;
    this.chunks = [];
    this.length = 0;
    return all;
  }
}

/** Most entries have no PAX records: one shared empty map, not one per entry. */
const NO_PAX: ReadonlyMap<string, Buffer> = new Map();

interface Pending {
  pax: ReadonlyMap<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/**
 * Reads a tar stream. Every input byte appears in exactly one `raw` or `data` token, in order.
 * Throws VerificationError on a corrupt header, naming the byte offset.
 */
export async function* readTar(input: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarToken> {
  const tokenizer = new TarTokenizer();
  for await (const chunk of input) yield* tokenizer.push(asBuffer(chunk));
  yield* tokenizer.end();
}

/**
 * The tar reader's state machine, fed chunk by chunk: `push` returns the tokens the bytes so far
 * complete, `end` the rest. Synchronous, so a consumer that needs no I/O per token (a rebuild
 * hashing content it already holds) pays no promise per token; `readTar` wraps it for streams.
 */
export class TarTokenizer {
  private readonly queue = new ByteQueue();
  /** Stream offset of the first byte still in the queue (for error messages). */
  private offset = 0;
  private pending: Pending = { pax: NO_PAX };
  private dataRemaining = 0;
  /** Content bytes of the entry whose header came last. */
  private dataSize = 0;
  private paddingRemaining = 0;
  /** After the end-of-archive block every byte is kept verbatim. */
  private trailer = false;

  /**
   * Which input this tokenizer still holds views of: the buffer behind the oldest bytes it keeps
   * queued, or `all` while an extension's values (views of earlier input) wait for their entry.
   * A caller that reuses its input buffers (ingest.ts) reuses none it may still read.
   */
  retains(): ArrayBufferLike | 'all' | undefined {
    if (this.pending.pax.size > 0) return 'all';
    return this.queue.oldest;
  }

  push(chunk: Buffer): TarToken[] {
    this.queue.push(chunk);
    const tokens: TarToken[] = [];
    this.drain(tokens);
    return tokens;
  }

  /**
   * A file's content that the caller holds and does not pass in (a rebuild from stored objects,
   * hashed on another thread). It must be the whole content of the entry whose header came last,
   * none of it passed in yet, so the tokens are exactly what the bytes themselves would give.
   * `id` is the caller's name for the content (a digest), handed on in the token.
   */
  held(size: number, id: string): TarToken[] {
    if (size === 0 || size !== this.dataSize || this.dataRemaining !== size) {
      throw new VerificationError(
        `tar stream: ${size} content bytes at offset ${this.offset} are not the whole content of the file before them`,
      );
    }
    this.offset += size;
    this.dataRemaining = 0;
    return [{ kind: 'held', size, id }, { kind: 'end-entry' }];
  }

  /** The tokens left at the end of input; throws if the stream stops inside an entry. */
  end(): TarToken[] {
    if (this.dataRemaining > 0 || this.paddingRemaining > 0) throw truncated(this.offset);
    // A whole header still queued is one whose extension body never arrived.
    if (!this.trailer && this.queue.length >= BLOCK) throw truncated(this.offset + BLOCK);
    // Streams that stop without the end-of-archive blocks are accepted as Go's archive/tar does;
    // anything left over (less than a block) is kept so the bytes still round-trip.
    return this.queue.takeAll().map((bytes) => ({ kind: 'raw', bytes }));
  }

  private drain(tokens: TarToken[]): void {
    for (;;) {
      if (this.trailer) {
        for (const bytes of this.queue.takeAll()) tokens.push({ kind: 'raw', bytes });
        return;
      }
      if (this.dataRemaining > 0) {
        if (this.queue.length === 0) return;
        this.data(tokens);
      } else if (this.paddingRemaining > 0) {
        if (this.queue.length < this.paddingRemaining) return;
        tokens.push({ kind: 'raw', bytes: this.take(this.paddingRemaining) });
        this.paddingRemaining = 0;
      } else if (!this.header(tokens)) {
        return;
      }
    }
  }

  private data(tokens: TarToken[]): void {
    const piece = this.queue.takeSome(this.dataRemaining);
    this.offset += piece.length;
    this.dataRemaining -= piece.length;
    tokens.push({ kind: 'data', bytes: piece });
    if (this.dataRemaining === 0) tokens.push({ kind: 'end-entry' });
  }

  /** Consumes one header (with its extension body); false when more input is needed first. */
  private header(tokens: TarToken[]): boolean {
    if (this.queue.length < BLOCK) return false;
    const at = this.offset;
    const header = this.queue.peek(BLOCK);
    if (isZeroBlock(header)) {
      // End of archive: this block, its twin and any record padding are kept verbatim.
      tokens.push({ kind: 'raw', bytes: this.take(BLOCK) });
      this.trailer = true;
      return true;
    }
    checkChecksum(header, at);
    const typeflag = typeflagOf(header);
    const size = nonNegative(header, 'size', at);
    if (isExtensionType(typeflag)) {
      if (size > MAX_EXTENSION_BYTES)
        throw new VerificationError(`tar extension header at offset ${at} is ${size} bytes, over the limit`);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (this.queue.length < BLOCK + padded) return false;
      const record = this.take(BLOCK + padded);
      tokens.push({ kind: 'raw', bytes: record });
      this.extension(typeflag, record.subarray(BLOCK, BLOCK + size), at + BLOCK + padded);
      return true;
    }
    const type = ENTRY_TYPES[typeflag];
    if (!type) {
      const what = typeflag === 'S' ? 'GNU sparse files are' : `tar entry type "${printable(typeflag)}" is`;
      throw new VerificationError(`${what} not supported (offset ${at})`);
    }
    const pax = this.pending.pax;
    // The bytes on disk after the header: PAX's size wins over the header's (files over 8 GiB).
    const paxSize = pax.has('size') ? Number(pax.get('size')!.toString()) : undefined;
    if (paxSize !== undefined && !Number.isSafeInteger(paxSize))
      throw new VerificationError(`bad PAX size at offset ${at}`);
    // Header-only types (links, directories, fifos, devices) have no content whatever their size
    // field says: Go's archive/tar and GNU tar read none, and so must we, or we would misparse.
    const dataSize = type === 'file' ? (paxSize ?? size) : 0;
    const entry = buildEntry(header, at, type, dataSize, pax, this.pending);
    this.pending = { pax: NO_PAX };
    tokens.push({ kind: 'raw', bytes: this.take(BLOCK) }, { kind: 'entry', entry });
    this.dataRemaining = dataSize;
    this.dataSize = dataSize;
    this.paddingRemaining = Math.ceil(dataSize / BLOCK) * BLOCK - dataSize;
    if (dataSize === 0) tokens.push({ kind: 'end-entry' });
    return true;
  }

  private extension(typeflag: string, content: Buffer, offset: number): void {
    // As Go: a second 'x' replaces the first, and a global header is an entry of its own there
    // (Docker and containers/storage skip it), so it is checked, then ends what was pending.
    if (typeflag === PAX_LOCAL) this.pending.pax = parsePax(content, offset);
    else if (typeflag === PAX_GLOBAL) {
      parsePax(content, offset);
      this.pending = { pax: NO_PAX };
    } else if (typeflag === GNU_LONG_NAME) this.pending.longName = cString(content);
    else this.pending.longLink = cString(content);
  }

  private take(n: number): Buffer {
    this.offset += n;
    return this.queue.take(n);
  }
}

function buildEntry(
  header: Buffer,
  at: number,
  type: EntryType,
  size: number,
  pax: ReadonlyMap<string, Buffer>,
  pending: Pending,
): TarEntry {
  const paxText = (key: string) => pax.get(key)?.toString('utf8');
  const paxNumber = (key: string) => {
    const v = paxText(key);
    return v === undefined ? undefined : Number(v);
  };
  const xattrs: Record<string, Buffer> = {};
  for (const [key, value] of pax) {
    if (key.startsWith('SCHILY.xattr.')) xattrs[key.slice('SCHILY.xattr.'.length)] = value;
  }
  return {
    name: pending.longName ?? paxText('path') ?? headerPathText(header),
    type,
    mode: nonNegative(header, 'mode', at) & 0o7777,
    uid: paxNumber('uid') ?? nonNegative(header, 'uid', at),
    gid: paxNumber('gid') ?? nonNegative(header, 'gid', at),
    uname: paxText('uname') ?? fieldText(header, 'uname'),
    gname: paxText('gname') ?? fieldText(header, 'gname'),
    size,
    mtime: paxNumber('mtime') ?? nonNegative(header, 'mtime', at),
    linkname: pending.longLink ?? paxText('linkpath') ?? fieldText(header, 'linkname'),
    devmajor: nonNegative(header, 'devmajor', at),
    devminor: nonNegative(header, 'devminor', at),
    xattrs,
  };
}

/** A header number skiff's view of an entry takes as is: a negative one is refused. */
function nonNegative(header: Buffer, field: NumericField, at: number): number {
  const value = readNumber(header, field, at);
  if (value < 0) throw new VerificationError(`negative ${field} in tar header at offset ${at}`);
  return value;
}

function truncated(offset: number): VerificationError {
  return new VerificationError(`tar stream truncated at offset ${offset}`);
}
