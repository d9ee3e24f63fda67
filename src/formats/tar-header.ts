/**
 * The one tar header codec (docs/formats.md "Tar headers"): where each field of a 512-byte header
 * block lives, numbers (octal and GNU base-256), the checksum, PAX records, GNU long names and
 * links, and ustar header writing. The layer reader (tar.ts), the Go-exact header reader behind
 * zstd:chunked TOCs (tar-go-header.ts) and the `docker save` archive (transport/tar-archive.ts)
 * all read headers through it, so a header means the same thing to each of them, and that thing
 * is what Go's archive/tar (Docker, containerd, containers/storage) makes of it.
 */
import { VerificationError } from '../errors/index.js';

export const BLOCK = 512;

/** [offset, length] of each header field (POSIX ustar; GNU and star reuse the prefix area). */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  linkname: [157, 100],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
  /** star keeps a shorter prefix, then access and change times. */
  starPrefix: [345, 131],
  starAtime: [476, 12],
  starCtime: [488, 12],
  /** GNU keeps access and change times where ustar has the prefix. */
  gnuAtime: [345, 12],
  gnuCtime: [357, 12],
} as const;

export type Field = keyof typeof FIELD;
export type NumericField = Exclude<Field, 'name' | 'linkname' | 'uname' | 'gname' | 'prefix' | 'starPrefix'>;

/** Offset of the typeflag byte. */
export const TYPEFLAG = 156;

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/**
 * What each entry typeflag stands for. NUL (v7) and `7` (contiguous file) are regular files to
 * every unpacker; other typeflags are extensions (below) or types skiff does not handle.
 */
export const ENTRY_TYPES: Readonly<Record<string, EntryType | undefined>> = {
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

/** The typeflags of extension headers, whose body describes the entry after them. */
export const PAX_LOCAL = 'x';
export const PAX_GLOBAL = 'g';
export const GNU_LONG_NAME = 'L';
export const GNU_LONG_LINK = 'K';

/**
 * The most content a PAX or GNU extension header may have (docs/design.md §10: every size read
 * from untrusted input is bounded); real ones hold a few paths and xattrs.
 */
export const MAX_EXTENSION_BYTES = 1024 * 1024;

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

export type HeaderFormat = 'v7' | 'ustar' | 'gnu' | 'star';

/** The header's typeflag as a one-character string. */
export function typeflagOf(block: Buffer): string {
  return String.fromCharCode(block[TYPEFLAG]!);
}

/** Whether a typeflag announces an extension header (PAX local or global, GNU long name or link). */
export function isExtensionType(typeflag: string): boolean {
  return (
    typeflag === PAX_LOCAL ||
    typeflag === PAX_GLOBAL ||
    typeflag === GNU_LONG_NAME ||
    typeflag === GNU_LONG_LINK
  );
}

const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \0', 'latin1');
const STAR_TRAILER = Buffer.from('tar\0', 'latin1');

/** The header layout, told by the magic as Go's getFormat tells it. */
export function formatOf(block: Buffer): HeaderFormat {
  if (holds(block, USTAR_MAGIC, 257)) return holds(block, STAR_TRAILER, 508) ? 'star' : 'ustar';
  if (holds(block, GNU_MAGIC, 257)) return 'gnu';
  return 'v7';
}

/**
 * Whether `block` holds `bytes` at `at`. Byte by byte, no strings made: this runs for every header
 * of every layer, and Buffer.compare's argument checks cost more than these few bytes.
 */
function holds(block: Buffer, bytes: Buffer, at: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (block[at + i] !== bytes[i]) return false;
  return true;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i += 8) if (block.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** The bytes of a field up to its first NUL (tar strings are NUL-terminated unless they fill it). */
export function fieldBytes(block: Buffer, field: Field): Buffer {
  return block.subarray(FIELD[field][0], fieldEnd(block, field));
}

/** The same as text, with no Buffer made in between (the tar reader's hot path). */
export function fieldText(block: Buffer, field: Field): string {
  return block.toString('utf8', FIELD[field][0], fieldEnd(block, field));
}

function fieldEnd(block: Buffer, field: Field): number {
  const [start, length] = FIELD[field];
  const nul = block.indexOf(0, start);
  return nul < 0 || nul > start + length ? start + length : nul;
}

/** The field holding a name prefix in this header's layout, if it has one and it is not empty. */
function prefixOf(block: Buffer): 'prefix' | 'starPrefix' | undefined {
  const format = formatOf(block);
  const field = format === 'ustar' ? 'prefix' : format === 'star' ? 'starPrefix' : undefined;
  return field && block[FIELD[field][0]] !== 0 ? field : undefined;
}

/** The entry's path from the header alone: name, joined to the ustar or star prefix if there is one. */
export function headerPath(block: Buffer): Buffer {
  const prefix = prefixOf(block);
  const name = fieldBytes(block, 'name');
  return prefix ? Buffer.concat([fieldBytes(block, prefix), Buffer.from('/'), name]) : name;
}

/** headerPath as text. */
export function headerPathText(block: Buffer): string {
  const prefix = prefixOf(block);
  const name = fieldText(block, 'name');
  return prefix ? `${fieldText(block, prefix)}/${name}` : name;
}

export function cBytes(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

export function cString(bytes: Buffer): string {
  return cBytes(bytes).toString('utf8');
}

// ---- numbers ----

/**
 * A numeric field as Go's parseNumeric reads it: base-256 (two's complement) when the high bit of
 * the first byte is set, else octal digits between leading and trailing spaces and NULs, ending at
 * the first NUL. `at` (the header's stream offset) only goes into the error message.
 */
export function readNumber(block: Buffer, field: NumericField, at?: number): number {
  const [start, length] = FIELD[field];
  const value =
    block[start]! & 0x80 ? readBase256(block, start, length) : readOctal(block, start, start + length);
  if (value === undefined) {
    const text = block.toString('latin1', start, start + length);
    throw new VerificationError(`bad ${field} "${printable(text)}" in tar header${where(at)}`);
  }
  if (!Number.isSafeInteger(value))
    throw new VerificationError(`${field} too large in tar header${where(at)}`);
  return value;
}

function readBase256(block: Buffer, start: number, length: number): number {
  // Negative numbers are stored inverted: -a-1 == ^a.
  const invert = block[start]! & 0x40 ? 0xff : 0;
  let value = (block[start]! ^ invert) & 0x7f;
  for (let i = 1; i < length; i++) value = value * 256 + (block[start + i]! ^ invert);
  return invert ? -value - 1 : value;
}

/**
 * Octal, read without making a string. Go trims spaces and NULs from both ends, cuts at the first
 * NUL left and wants only digits; so after the digits may come a NUL (and then anything), or
 * spaces and NULs to the end. Undefined for anything else.
 */
function readOctal(block: Buffer, start: number, end: number): number | undefined {
  let i = start;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let value = 0;
  for (; i < end; i++) {
    const byte = block[i]!;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
  }
  if (i === end || block[i] === 0) return value;
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return undefined;
  return value;
}

/**
 * Writes a non-negative number: octal digits and a NUL when they fit, else GNU base-256 (sizes of
 * 8 GiB and more, ids over 2097151), as GNU tar and Go write them.
 */
export function writeNumber(block: Buffer, field: NumericField, value: number): void {
  const [start, length] = FIELD[field];
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`tar ${field} must be a non-negative integer: ${value}`);
  if (value < 8 ** (length - 1)) {
    block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, start, length, 'latin1');
    return;
  }
  let rest = value;
  for (let i = start + length - 1; i > start; i--) {
    block[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  block[start] = 0x80;
}

// ---- checksum ----

/**
 * The two sums a header's checksum may hold: of unsigned bytes, and of signed bytes as old tars
 * summed them (the unsigned sum less 256 for each byte over 127). The field counts as eight spaces.
 */
export function checksums(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 8 * 0x20;
  let high = 0;
  // Two loops around the checksum field: this runs for every header of every layer.
  for (let i = 0; i < 148; i++) {
    unsigned += block[i]!;
    high += block[i]! >> 7;
  }
  for (let i = 156; i < BLOCK; i++) {
    unsigned += block[i]!;
    high += block[i]! >> 7;
  }
  return { unsigned, signed: unsigned - 256 * high };
}

/** Refuses a header whose checksum is neither sum (Go and GNU tar accept both). */
export function checkChecksum(block: Buffer, at?: number): void {
  const stored = readNumber(block, 'checksum', at);
  const { unsigned, signed } = checksums(block);
  if (stored !== unsigned && stored !== signed)
    throw new VerificationError(`corrupt tar header${where(at)} (checksum mismatch)`);
}

/** Fills in the checksum field as GNU tar writes it: six octal digits, NUL, space. */
export function writeChecksum(block: Buffer): void {
  block.write(`${checksums(block).unsigned.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
}

// ---- PAX records ----

/**
 * PAX extended header records, "LEN KEY=VALUE\n" with LEN counting the whole record; values stay
 * bytes (xattr values need not be text). A later record for a key replaces an earlier one. NULs
 * after the last record are padding. Anything else malformed is refused.
 */
export function parsePax(body: Buffer, at?: number): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const space = body.indexOf(0x20, pos);
    const length = space > pos ? Number(body.toString('latin1', pos, space)) : Number.NaN;
    if (
      !Number.isInteger(length) ||
      length <= 0 ||
      pos + length > body.length ||
      body[pos + length - 1] !== 0x0a
    ) {
      throw new VerificationError(`malformed PAX header${near(at)}`);
    }
    const record = body.subarray(space + 1, pos + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new VerificationError(`malformed PAX record${near(at)}`);
    records.set(record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1)));
    pos += length;
  }
  return records;
}

/** One PAX record; its length prefix counts itself, so it is found by trying. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length++;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

// ---- writing ----

export interface HeaderFields {
  /** At most 100 bytes: longer names need a PAX path or GNU long name before the header. */
  name: string | Buffer;
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string | Buffer;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

/**
 * A ustar header block ("ustar\0", version "00"). Fields left out stay NUL, as the writers that
 * came before this codec left them, so their output is unchanged byte for byte.
 */
export function writeHeader(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeText(block, 'name', fields.name);
  if (fields.linkname !== undefined) writeText(block, 'linkname', fields.linkname);
  if (fields.uname !== undefined) writeText(block, 'uname', fields.uname);
  if (fields.gname !== undefined) writeText(block, 'gname', fields.gname);
  const numbers = ['mode', 'uid', 'gid', 'size', 'mtime', 'devmajor', 'devminor'] as const;
  for (const field of numbers) {
    const value = fields[field];
    if (value !== undefined) writeNumber(block, field, value);
  }
  block.write(fields.typeflag ?? '0', TYPEFLAG, 1, 'latin1');
  block.write('ustar\x0000', 257, 8, 'latin1');
  writeChecksum(block);
  return block;
}

/** A GNU long name ('L') or long link ('K') record: its header and NUL-terminated, padded body. */
export function gnuLongRecord(
  typeflag: typeof GNU_LONG_NAME | typeof GNU_LONG_LINK,
  value: string | Buffer,
): Buffer {
  const body = Buffer.concat([Buffer.from(value), Buffer.alloc(1)]);
  const header = writeHeader({
    name: '././@LongLink',
    typeflag,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
  });
  return Buffer.concat([header, body, padding(body.length)]);
}

/** A PAX extended header ('x' for the next entry, 'g' global): header and padded records. */
export function paxExtension(
  records: Iterable<readonly [string, Buffer | string]>,
  typeflag: typeof PAX_LOCAL | typeof PAX_GLOBAL = PAX_LOCAL,
  name = 'PaxHeaders/x',
): Buffer {
  const body = Buffer.concat([...records].map(([key, value]) => paxRecord(key, value)));
  const header = writeHeader({ name, typeflag, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0 });
  return Buffer.concat([header, body, padding(body.length)]);
}

/** Zero bytes that pad content of `size` bytes to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

function writeText(block: Buffer, field: Field, value: string | Buffer): void {
  const [start, length] = FIELD[field];
  const bytes = Buffer.from(value);
  if (bytes.length > length) throw new Error(`tar ${field} longer than ${length} bytes: ${bytes.toString()}`);
  bytes.copy(block, start);
}

// ---- messages ----

export function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function where(at: number | undefined): string {
  return at === undefined ? '' : ` at offset ${at}`;
}

function near(at: number | undefined): string {
  return at === undefined ? '' : ` near offset ${at}`;
}
