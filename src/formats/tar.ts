/**
 * A streaming tar reader that keeps every byte: headers, extension records and padding come out as
 * `raw` tokens and file contents as `data` tokens, in order, so concatenating all tokens gives back
 * the exact input stream. That is what lets skiff store a layer file by file and still rebuild the
 * original tar (and its DiffID) byte for byte. Handles ustar, GNU (long names, base-256 numbers)
 * and PAX (per-entry and global) headers.
 */
import { VerificationError } from '../errors/index.js';

export const BLOCK = 512;

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

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
  | { kind: 'end-entry' };

const TYPEFLAGS: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** Bounds for metadata read from the archive itself (SPEC §10: bound every size from untrusted input). */
const MAX_EXTENSION_BYTES = 1024 * 1024;

/** Accumulates input and hands out exact byte counts without copying more than needed. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

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

interface Pending {
  pax: Record<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/**
 * Reads a tar stream. Every input byte appears in exactly one `raw` or `data` token, in order.
 * Throws VerificationError on a corrupt header, naming the byte offset.
 */
export async function* readTar(input: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarToken> {
  const queue = new ByteQueue();
  const iterator = input[Symbol.asyncIterator]();
  let offset = 0;
  let inputDone = false;
  const fill = async (need: number): Promise<boolean> => {
    while (queue.length < need && !inputDone) {
      const next = await iterator.next();
      if (next.done) inputDone = true;
      else
        queue.push(
          Buffer.isBuffer(next.value)
            ? next.value
            : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength),
        );
    }
    return queue.length >= need;
  };
  let globalPax: Record<string, Buffer> = {};
  let pending: Pending = { pax: {} };

  for (;;) {
    if (!(await fill(BLOCK))) break;
    const header = queue.take(BLOCK);
    if (isZeroBlock(header)) {
      // End of archive: this block, its twin and any record padding are kept verbatim.
      yield { kind: 'raw', bytes: header };
      offset += BLOCK;
      while (await fill(1)) for (const rest of queue.takeAll()) yield { kind: 'raw', bytes: rest };
      return;
    }
    checkHeader(header, offset);
    const typeflag = String.fromCharCode(header[156]!);
    const size = readNumber(header, 124, 12, offset, 'size');
    offset += BLOCK;

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_EXTENSION_BYTES)
        throw new VerificationError(
          `tar extension header at offset ${offset - BLOCK} is ${size} bytes, over the limit`,
        );
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (!(await fill(padded))) throw truncated(offset);
      const body = queue.take(padded);
      yield { kind: 'raw', bytes: Buffer.concat([header, body]) };
      offset += padded;
      const content = body.subarray(0, size);
      if (typeflag === 'x') pending.pax = { ...pending.pax, ...parsePax(content, offset) };
      else if (typeflag === 'g') globalPax = { ...globalPax, ...parsePax(content, offset) };
      else if (typeflag === 'L') pending.longName = cString(content);
      else pending.longLink = cString(content);
      continue;
    }
    const type = TYPEFLAGS[typeflag];
    if (!type) {
      const what = typeflag === 'S' ? 'GNU sparse files are' : `tar entry type "${printable(typeflag)}" is`;
      throw new VerificationError(`${what} not supported (offset ${offset - BLOCK})`);
    }
    const pax = { ...globalPax, ...pending.pax };
    // The bytes on disk after the header: PAX's size wins over the header's (files over 8 GiB).
    const paxSize = pax.size === undefined ? undefined : Number(pax.size.toString());
    if (paxSize !== undefined && !Number.isSafeInteger(paxSize))
      throw new VerificationError(`bad PAX size at offset ${offset - BLOCK}`);
    // Header-only types (links, directories, fifos, devices) have no content whatever their size
    // field says: Go's archive/tar and GNU tar read none, and so must we, or we would misparse.
    const dataSize = type === 'file' ? (paxSize ?? size) : 0;
    const entry = buildEntry(header, type, dataSize, pax, pending);
    pending = { pax: {} };
    yield { kind: 'raw', bytes: header };
    yield { kind: 'entry', entry };
    let remaining = dataSize;
    while (remaining > 0) {
      if (!(await fill(1))) throw truncated(offset);
      const piece = queue.takeSome(remaining);
      remaining -= piece.length;
      offset += piece.length;
      yield { kind: 'data', bytes: piece };
    }
    yield { kind: 'end-entry' };
    const padding = Math.ceil(dataSize / BLOCK) * BLOCK - dataSize;
    if (padding > 0) {
      if (!(await fill(padding))) throw truncated(offset);
      yield { kind: 'raw', bytes: queue.take(padding) };
      offset += padding;
    }
  }
  // Streams that stop without the end-of-archive blocks are accepted as Go's archive/tar does;
  // anything left over (less than a block) is kept so the bytes still round-trip.
  for (const rest of queue.takeAll()) yield { kind: 'raw', bytes: rest };
}

function buildEntry(
  header: Buffer,
  type: EntryType,
  size: number,
  pax: Record<string, Buffer>,
  pending: Pending,
): TarEntry {
  const paxText = (key: string) => pax[key]?.toString('utf8');
  const paxNumber = (key: string) => {
    const v = paxText(key);
    return v === undefined ? undefined : Number(v);
  };
  const magic = header.toString('latin1', 257, 263);
  const ustarPrefix = magic === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
  const rawName = cString(header.subarray(0, 100));
  const name = paxText('path') ?? pending.longName ?? (ustarPrefix ? `${ustarPrefix}/${rawName}` : rawName);
  const xattrs: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(pax)) {
    if (key.startsWith('SCHILY.xattr.')) xattrs[key.slice('SCHILY.xattr.'.length)] = value;
  }
  return {
    name,
    type,
    mode: readNumber(header, 100, 8, 0, 'mode') & 0o7777,
    uid: paxNumber('uid') ?? readNumber(header, 108, 8, 0, 'uid'),
    gid: paxNumber('gid') ?? readNumber(header, 116, 8, 0, 'gid'),
    uname: paxText('uname') ?? cString(header.subarray(265, 297)),
    gname: paxText('gname') ?? cString(header.subarray(297, 329)),
    size,
    mtime: paxNumber('mtime') ?? readNumber(header, 136, 12, 0, 'mtime'),
    linkname: paxText('linkpath') ?? pending.longLink ?? cString(header.subarray(157, 257)),
    devmajor: readNumber(header, 329, 8, 0, 'devmajor'),
    devminor: readNumber(header, 337, 8, 0, 'devminor'),
    xattrs,
  };
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i += 8) if (block.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** The header checksum, accepting the unsigned and the historical signed sums as Go and GNU do. */
function checkHeader(header: Buffer, offset: number): void {
  const stored = readNumber(header, 148, 8, offset, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new VerificationError(`corrupt tar header at offset ${offset} (checksum mismatch)`);
  }
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function readNumber(header: Buffer, start: number, length: number, offset: number, field: string): number {
  const first = header[start]!;
  if (first & 0x80) {
    if (first === 0xff) throw new VerificationError(`negative ${field} in tar header at offset ${offset}`);
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + header[start + i]!;
    if (!Number.isSafeInteger(value))
      throw new VerificationError(`${field} too large in tar header at offset ${offset}`);
    return value;
  }
  const text = header
    .toString('latin1', start, start + length)
    .replace(/\0.*$/s, '')
    .trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text))
    throw new VerificationError(`bad ${field} "${printable(text)}" in tar header at offset ${offset}`);
  return Number.parseInt(text, 8);
}

/** PAX records: "LEN KEY=VALUE\n", LEN counting the whole record. */
function parsePax(content: Buffer, offset: number): Record<string, Buffer> {
  const records: Record<string, Buffer> = {};
  let pos = 0;
  while (pos < content.length) {
    if (content[pos] === 0) break;
    const space = content.indexOf(0x20, pos);
    const length = space > pos ? Number(content.toString('latin1', pos, space)) : Number.NaN;
    if (
      !Number.isInteger(length) ||
      length <= 0 ||
      pos + length > content.length ||
      content[pos + length - 1] !== 0x0a
    ) {
      throw new VerificationError(`malformed PAX header near offset ${offset}`);
    }
    const record = content.subarray(space + 1, pos + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new VerificationError(`malformed PAX record near offset ${offset}`);
    records[record.toString('utf8', 0, eq)] = Buffer.from(record.subarray(eq + 1));
    pos += length;
  }
  return records;
}

function cString(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.toString('utf8', 0, nul < 0 ? bytes.length : nul);
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function truncated(offset: number): VerificationError {
  return new VerificationError(`tar stream truncated at offset ${offset}`);
}
