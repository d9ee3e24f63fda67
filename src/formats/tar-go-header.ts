/**
 * Tar header metadata exactly as Go's archive/tar (the tar-split fork containers/storage uses)
 * derives it. When containers/storage pulls a zstd:chunked layer it parses every header of the
 * tar-split with that reader and refuses the layer unless each TOC entry matches field for field
 * (type, name, link, raw mode, size, ids, times to the nanosecond, device numbers, xattrs). So the
 * TOC is built from the same header bytes by the same rules, not from skiff's normalised view:
 * e.g. Go keeps the mode's file-type bits, lets a GNU long name win over a PAX path, reads GNU and
 * star access/change times, and does not apply global PAX records to later entries.
 */
import { VerificationError } from '../errors/index.js';

/** Seconds and nanoseconds since the epoch, as Go's time.Unix keeps them (nanos in [0, 1e9)). */
export interface GoTime {
  seconds: number;
  nanos: number;
}

export interface GoHeader {
  /** The typeflag after Go's fix-up of the legacy '\0' type. */
  typeflag: string;
  /** Raw bytes: Go strings are bytes, and tar-split records a non-UTF-8 name as bytes. */
  name: Buffer;
  linkName: Buffer;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  modTime: GoTime;
  accessTime?: GoTime | undefined;
  changeTime?: GoTime | undefined;
  devMajor: number;
  devMinor: number;
  /** SCHILY.xattr.* PAX records of this entry, name → raw value. */
  xattrs: Map<string, Buffer>;
}

/** A layer this writer must not convert: containers/storage could not pull the result. */
export class UnconvertibleLayerError extends VerificationError {}

const BLOCK = 512;

type Format = 'v7' | 'ustar' | 'gnu' | 'star';

/**
 * Follows the header blocks of one tar stream: extension headers (PAX 'x', GNU 'L'/'K') are fed in
 * as they pass, and each real header block then yields the entry's metadata.
 */
export class GoHeaderReader {
  private pax: Map<string, Buffer> | undefined;
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;

  /** Whether a raw tar block starts an extension header this reader consumes. */
  static isExtension(block: Buffer): boolean {
    if (block.length < BLOCK || block.length % BLOCK !== 0) return false;
    const flag = block[156];
    return flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b; // x g L K
  }

  /** Takes an extension header with its body (as one raw token of skiff's tar reader). */
  extension(token: Buffer): void {
    const typeflag = String.fromCharCode(token[156]!);
    const size = parseNumeric(token.subarray(124, 136));
    const body = token.subarray(BLOCK, BLOCK + size);
    if (typeflag === 'g') {
      // Go's reader hands a global header back as an entry of its own, which has no TOC type.
      throw new UnconvertibleLayerError(
        'the layer has a global PAX header, which zstd:chunked (containers/storage) cannot represent',
      );
    }
    // Like Go, a second PAX header before the same entry replaces the first.
    if (typeflag === 'x') this.pax = parsePaxRecords(body);
    else if (typeflag === 'L') this.longName = cBytes(body);
    else this.longLink = cBytes(body);
  }

  /** The metadata of the entry whose header block this is; resets the pending extensions. */
  header(block: Buffer): GoHeader {
    const pax = this.pax ?? new Map<string, Buffer>();
    if ([...pax.keys()].some((key) => key.startsWith('GNU.sparse.'))) {
      // Go expands PAX sparse files, so its file content would not be the bytes in the tar.
      throw new UnconvertibleLayerError(
        'the layer has a GNU sparse file, which zstd:chunked cannot represent',
      );
    }
    const format = formatOf(block);
    const header = readBlock(block, format);
    applyPax(header, pax);
    if (this.longName) header.name = this.longName;
    if (this.longLink) header.linkName = this.longLink;
    if (header.typeflag === '\0') header.typeflag = header.name.at(-1) === 0x2f ? '5' : '0';
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    return header;
  }
}

function formatOf(block: Buffer): Format {
  const magic = block.toString('latin1', 257, 263);
  if (magic === 'ustar\0') return block.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && block.toString('latin1', 263, 265) === ' \0') return 'gnu';
  return 'v7';
}

function readBlock(block: Buffer, format: Format): GoHeader {
  let name: Buffer = cBytes(block.subarray(0, 100));
  const header: GoHeader = {
    typeflag: String.fromCharCode(block[156]!),
    name,
    linkName: cBytes(block.subarray(157, 257)),
    mode: parseNumeric(block.subarray(100, 108)),
    size: parseNumeric(block.subarray(124, 136)),
    uid: parseNumeric(block.subarray(108, 116)),
    gid: parseNumeric(block.subarray(116, 124)),
    modTime: { seconds: parseNumeric(block.subarray(136, 148)), nanos: 0 },
    devMajor: 0,
    devMinor: 0,
    xattrs: new Map(),
  };
  if (format === 'v7') return header;
  header.devMajor = parseNumeric(block.subarray(329, 337));
  header.devMinor = parseNumeric(block.subarray(337, 345));
  let prefix: Buffer = Buffer.alloc(0);
  if (format === 'ustar') prefix = cBytes(block.subarray(345, 500));
  if (format === 'star') {
    prefix = cBytes(block.subarray(345, 476));
    header.accessTime = { seconds: parseNumeric(block.subarray(476, 488)), nanos: 0 };
    header.changeTime = { seconds: parseNumeric(block.subarray(488, 500)), nanos: 0 };
  }
  if (format === 'gnu') {
    if (block[345] !== 0) header.accessTime = { seconds: parseNumeric(block.subarray(345, 357)), nanos: 0 };
    if (block[357] !== 0) header.changeTime = { seconds: parseNumeric(block.subarray(357, 369)), nanos: 0 };
  }
  if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  header.name = name;
  return header;
}

/** Go's mergePAX: the records that override header fields, and the xattrs. */
function applyPax(header: GoHeader, pax: Map<string, Buffer>): void {
  for (const [key, value] of pax) {
    const text = value.toString('utf8');
    switch (key) {
      case 'path':
        header.name = value;
        break;
      case 'linkpath':
        header.linkName = value;
        break;
      case 'uid':
        header.uid = paxInteger(text, key);
        break;
      case 'gid':
        header.gid = paxInteger(text, key);
        break;
      case 'size':
        header.size = paxInteger(text, key);
        break;
      case 'mtime':
        header.modTime = parsePaxTime(text);
        break;
      case 'atime':
        header.accessTime = parsePaxTime(text);
        break;
      case 'ctime':
        header.changeTime = parsePaxTime(text);
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) header.xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    }
  }
}

/** PAX records "LEN KEY=VALUE\n"; skiff's tar reader has already checked their framing. */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const space = body.indexOf(0x20, pos);
    const length = Number(body.toString('latin1', pos, space));
    if (space < 0 || !Number.isInteger(length) || length <= 0 || pos + length > body.length) {
      throw new VerificationError('malformed PAX header');
    }
    const record = body.subarray(space + 1, pos + length - 1);
    const eq = record.indexOf(0x3d);
    records.set(record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1)));
    pos += length;
  }
  return records;
}

function paxInteger(text: string, key: string): number {
  if (!/^-?\d+$/.test(text)) throw new VerificationError(`bad PAX ${key} "${text}"`);
  return Number(text);
}

/** Go's parsePAXTime: nanoseconds right-padded or truncated to 9 digits; a negative time counts back. */
export function parsePaxTime(text: string): GoTime {
  const match = /^(-?\d+)(?:\.(\d*))?$/.exec(text);
  if (!match) throw new VerificationError(`bad PAX time "${text}"`);
  const seconds = Number(match[1]);
  const nanos = Number((match[2] ?? '').padEnd(9, '0').slice(0, 9));
  if (nanos === 0) return { seconds, nanos: 0 };
  // time.Unix(secs, -nanos) for negative times, normalised so nanos stay in [0, 1e9).
  return match[1]!.startsWith('-') ? { seconds: seconds - 1, nanos: 1e9 - nanos } : { seconds, nanos };
}

/** Go's parseNumeric: base-256 when the high bit is set, else octal between spaces and NULs. */
function parseNumeric(field: Buffer): number {
  if (field[0]! & 0x80) {
    // Negative numbers are stored inverted: -a-1 == ^a.
    const invert = field[0]! & 0x40 ? 0xff : 0;
    let value = 0;
    for (let i = 0; i < field.length; i++) {
      const byte = (field[i]! ^ invert) & (i === 0 ? 0x7f : 0xff);
      value = value * 256 + byte;
    }
    return invert ? -value - 1 : value;
  }
  const text = field.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (text === '') return 0;
  const nul = text.indexOf('\0');
  const digits = nul < 0 ? text : text.slice(0, nul);
  if (!/^[0-7]+$/.test(digits)) throw new VerificationError(`bad octal number "${digits}" in a tar header`);
  return Number.parseInt(digits, 8);
}

function cBytes(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** A Go time as encoding/json writes it (RFC 3339 with trimmed nanoseconds), in UTC. */
export function formatGoTime(time: GoTime): string {
  const date = new Date(time.seconds * 1000);
  const iso = Number.isNaN(date.getTime()) ? '' : date.toISOString();
  if (!/^\d{4}-/.test(iso)) {
    // encoding/json refuses such times, so containers/storage could not have written this TOC either.
    throw new UnconvertibleLayerError(`a tar timestamp (${time.seconds}) is outside the years 0-9999`);
  }
  const base = iso.slice(0, iso.indexOf('.'));
  if (time.nanos === 0) return `${base}Z`;
  return `${base}.${String(time.nanos).padStart(9, '0').replace(/0+$/, '')}Z`;
}
