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
import {
  BLOCK,
  cBytes,
  FIELD,
  fieldBytes,
  formatOf,
  GNU_LONG_NAME,
  headerPath,
  isExtensionType,
  type NumericField,
  PAX_GLOBAL,
  PAX_LOCAL,
  parsePax,
  readNumber,
  typeflagOf,
} from './tar-header.js';

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
    return isExtensionType(typeflagOf(block));
  }

  /** Takes an extension header with its body (as one raw token of skiff's tar reader). */
  extension(token: Buffer): void {
    const typeflag = typeflagOf(token);
    const body = token.subarray(BLOCK, BLOCK + readNumber(token, 'size'));
    if (typeflag === PAX_GLOBAL) {
      // Go's reader hands a global header back as an entry of its own, which has no TOC type.
      throw new UnconvertibleLayerError(
        'the layer has a global PAX header, which zstd:chunked (containers/storage) cannot represent',
      );
    }
    // Like Go, a second PAX header before the same entry replaces the first.
    if (typeflag === PAX_LOCAL) this.pax = parsePax(body);
    else if (typeflag === GNU_LONG_NAME) this.longName = cBytes(body);
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
    const header = readBlock(block);
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

function readBlock(block: Buffer): GoHeader {
  const header: GoHeader = {
    typeflag: typeflagOf(block),
    name: headerPath(block),
    linkName: fieldBytes(block, 'linkname'),
    mode: readNumber(block, 'mode'),
    size: readNumber(block, 'size'),
    uid: readNumber(block, 'uid'),
    gid: readNumber(block, 'gid'),
    modTime: time(block, 'mtime'),
    devMajor: 0,
    devMinor: 0,
    xattrs: new Map(),
  };
  const format = formatOf(block);
  if (format === 'v7') return header;
  header.devMajor = readNumber(block, 'devmajor');
  header.devMinor = readNumber(block, 'devminor');
  if (format === 'star') {
    header.accessTime = time(block, 'starAtime');
    header.changeTime = time(block, 'starCtime');
  }
  if (format === 'gnu') {
    // GNU leaves the fields NUL when it has no such time.
    if (block[FIELD.gnuAtime[0]] !== 0) header.accessTime = time(block, 'gnuAtime');
    if (block[FIELD.gnuCtime[0]] !== 0) header.changeTime = time(block, 'gnuCtime');
  }
  return header;
}

function time(block: Buffer, field: NumericField): GoTime {
  return { seconds: readNumber(block, field), nanos: 0 };
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
