/**
 * The outer tar of a `docker save` archive: an index of its members built by reading headers only
 * (the file is seekable, so member contents are skipped, never read), and the few header-writing
 * helpers needed to produce one. Member contents (layer tars) are handled elsewhere; this is only
 * the container.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../errors/index.js';

export const TAR_BLOCK = 512;

export interface TarMember {
  name: string;
  /** Byte offset of the member's content in the archive file. */
  offset: number;
  size: number;
  kind: 'file' | 'symlink' | 'hardlink' | 'dir' | 'other';
  linkname: string;
}

/** Bounds on what an archive may make us hold (docs/design.md §10). */
const MAX_MEMBERS = 200_000;
const MAX_EXTENSION_BYTES = 1024 * 1024;
const MAX_LINK_HOPS = 8;

/** Reads every header of a tar file into a name → member map (names without a leading `./`). */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const handle = await fsp.open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const members = new Map<string, TarMember>();
    const header = Buffer.alloc(TAR_BLOCK);
    let pending: { path?: string; linkpath?: string; size?: number } = {};
    for (let offset = 0; offset + TAR_BLOCK <= fileSize; ) {
      await readAt(handle, header, offset);
      if (header.every((b) => b === 0)) break;
      checkChecksum(header, offset);
      const type = String.fromCharCode(header[156]!);
      const size = pending.size ?? readNumber(header, 124, 12, offset);
      const dataOffset = offset + TAR_BLOCK;
      if (dataOffset + size > fileSize)
        throw new VerificationError(`tar member at offset ${offset} is truncated`);
      if ('xLKg'.includes(type)) {
        pending = { ...pending, ...(await readExtension(handle, type, dataOffset, size, offset)) };
      } else {
        const name = normalizeName(pending.path ?? headerName(header));
        const linkname = pending.linkpath ?? cString(header.subarray(157, 257));
        members.set(name, { name, offset: dataOffset, size, kind: memberKind(type), linkname });
        pending = {};
        if (members.size > MAX_MEMBERS)
          throw new VerificationError(`tar has more than ${MAX_MEMBERS} members`);
      }
      offset = dataOffset + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    }
    return members;
  } finally {
    await handle.close();
  }
}

/** Follows symlinks and hard links (skopeo writes `ID/layer.tar -> ../HEX.tar`) to a regular file. */
export function resolveMember(members: Map<string, TarMember>, name: string): TarMember | undefined {
  let current = normalizeName(name);
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    const member = members.get(current);
    if (!member || member.kind === 'file') return member;
    if (member.kind === 'symlink')
      current = normalizeName(path.posix.join(path.posix.dirname(current), member.linkname));
    else if (member.kind === 'hardlink') current = normalizeName(member.linkname);
    else return undefined;
  }
  return undefined;
}

/** A ustar header for a regular file (GNU base-256 size beyond 8 GiB). Names must fit in 100 bytes. */
export function fileHeader(name: string, size: number, mode = 0o444): Buffer {
  const header = Buffer.alloc(TAR_BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar member name too long: ${name}`);
  header.write(name, 0, 100, 'utf8');
  writeOctal(header, 100, 8, mode);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  if (size < 8 ** 11) writeOctal(header, 124, 12, size);
  else writeBase256(header, 124, 12, size);
  writeOctal(header, 136, 12, 0);
  header.write('0', 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** Zero bytes that pad a member of `size` bytes to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK);
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * TAR_BLOCK);

async function readAt(handle: fsp.FileHandle, buffer: Buffer, offset: number): Promise<void> {
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
  if (bytesRead !== buffer.length) throw new VerificationError(`tar truncated at offset ${offset}`);
}

async function readExtension(handle: fsp.FileHandle, type: string, offset: number, size: number, at: number) {
  if (size > MAX_EXTENSION_BYTES) throw new VerificationError(`tar extension header at ${at} is too large`);
  const body = Buffer.alloc(size);
  await readAt(handle, body, offset);
  if (type === 'L') return { path: cString(body) };
  if (type === 'K') return { linkpath: cString(body) };
  if (type === 'g') return {};
  const records = parsePax(body, at);
  const paxSize = records.size === undefined ? undefined : Number(records.size);
  if (paxSize !== undefined && !Number.isSafeInteger(paxSize))
    throw new VerificationError(`bad PAX size at ${at}`);
  return {
    ...(records.path === undefined ? {} : { path: records.path }),
    ...(records.linkpath === undefined ? {} : { linkpath: records.linkpath }),
    ...(paxSize === undefined ? {} : { size: paxSize }),
  };
}

function parsePax(body: Buffer, at: number): Record<string, string> {
  const records: Record<string, string> = {};
  for (let pos = 0; pos < body.length && body[pos] !== 0; ) {
    const space = body.indexOf(0x20, pos);
    const length = Number(body.toString('latin1', pos, space));
    if (space < 0 || !Number.isInteger(length) || length <= 0 || pos + length > body.length)
      throw new VerificationError(`malformed PAX header at offset ${at}`);
    const record = body.toString('utf8', space + 1, pos + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return records;
}

function headerName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const prefix = header.toString('latin1', 257, 263) === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function memberKind(type: string): TarMember['kind'] {
  if (type === '0' || type === '\0' || type === '7') return 'file';
  if (type === '2') return 'symlink';
  if (type === '1') return 'hardlink';
  if (type === '5') return 'dir';
  return 'other';
}

function normalizeName(name: string): string {
  return path.posix.normalize(name.replace(/^(\.\/)+/, '')).replace(/\/$/, '');
}

function checkChecksum(header: Buffer, offset: number): void {
  const stored = readNumber(header, 148, 8, offset);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  if (stored !== sum)
    throw new VerificationError(`corrupt tar header at offset ${offset} (checksum mismatch)`);
}

function readNumber(header: Buffer, start: number, length: number, offset: number): number {
  if (header[start]! & 0x80) {
    let value = header[start]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + header[start + i]!;
    if (!Number.isSafeInteger(value))
      throw new VerificationError(`number too large in tar header at ${offset}`);
    return value;
  }
  const text = header
    .toString('latin1', start, start + length)
    .replace(/\0.*$/s, '')
    .trim();
  if (text !== '' && !/^[0-7]+$/.test(text))
    throw new VerificationError(`bad number in tar header at ${offset}`);
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function writeOctal(header: Buffer, start: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, start, length, 'latin1');
}

function writeBase256(header: Buffer, start: number, length: number, value: number): void {
  let rest = value;
  for (let i = start + length - 1; i > start; i--) {
    header[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  header[start] = 0x80;
}

function cString(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.toString('utf8', 0, nul < 0 ? bytes.length : nul);
}
