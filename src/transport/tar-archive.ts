/**
 * The outer tar of a `docker save` archive: an index of its members built by reading headers only
 * (the file is seekable, so member contents are skipped, never read), and the few header-writing
 * helpers needed to produce one. Member contents (layer tars) are handled elsewhere; this is only
 * the container.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../errors/index.js';
import {
  BLOCK,
  checkChecksum,
  cString,
  ENTRY_TYPES,
  fieldText,
  GNU_LONG_LINK,
  GNU_LONG_NAME,
  headerPathText,
  isExtensionType,
  isZeroBlock,
  MAX_EXTENSION_BYTES,
  PAX_LOCAL,
  parsePax,
  readNumber,
  typeflagOf,
  writeHeader,
} from '../formats/tar-header.js';

export { END_OF_ARCHIVE, padding } from '../formats/tar-header.js';

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
const MAX_LINK_HOPS = 8;

/** Reads every header of a tar file into a name → member map (names without a leading `./`). */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const handle = await fsp.open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const members = new Map<string, TarMember>();
    const header = Buffer.alloc(BLOCK);
    let pending: { path?: string; linkpath?: string; size?: number } = {};
    for (let offset = 0; offset + BLOCK <= fileSize; ) {
      await readAt(handle, header, offset);
      if (isZeroBlock(header)) break;
      checkChecksum(header, offset);
      const type = typeflagOf(header);
      const size = pending.size ?? readNumber(header, 'size', offset);
      if (size < 0) throw new VerificationError(`negative size in tar header at offset ${offset}`);
      const dataOffset = offset + BLOCK;
      if (dataOffset + size > fileSize)
        throw new VerificationError(`tar member at offset ${offset} is truncated`);
      if (isExtensionType(type)) {
        pending = { ...pending, ...(await readExtension(handle, type, dataOffset, size, offset)) };
      } else {
        const name = normalizeName(pending.path ?? headerPathText(header));
        const linkname = pending.linkpath ?? fieldText(header, 'linkname');
        members.set(name, { name, offset: dataOffset, size, kind: memberKind(type), linkname });
        pending = {};
        if (members.size > MAX_MEMBERS)
          throw new VerificationError(`tar has more than ${MAX_MEMBERS} members`);
      }
      offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
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
  return writeHeader({ name, mode, uid: 0, gid: 0, size, mtime: 0 });
}

async function readAt(handle: fsp.FileHandle, buffer: Buffer, offset: number): Promise<void> {
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
  if (bytesRead !== buffer.length) throw new VerificationError(`tar truncated at offset ${offset}`);
}

async function readExtension(handle: fsp.FileHandle, type: string, offset: number, size: number, at: number) {
  if (size > MAX_EXTENSION_BYTES) throw new VerificationError(`tar extension header at ${at} is too large`);
  const body = Buffer.alloc(size);
  await readAt(handle, body, offset);
  if (type === GNU_LONG_NAME) return { path: cString(body) };
  if (type === GNU_LONG_LINK) return { linkpath: cString(body) };
  if (type !== PAX_LOCAL) return {};
  const records = parsePax(body, at);
  const text = (key: string) => records.get(key)?.toString('utf8');
  const paxPath = text('path');
  const paxLink = text('linkpath');
  const paxSize = records.has('size') ? Number(text('size')) : undefined;
  if (paxSize !== undefined && !Number.isSafeInteger(paxSize))
    throw new VerificationError(`bad PAX size at ${at}`);
  return {
    ...(paxPath === undefined ? {} : { path: paxPath }),
    ...(paxLink === undefined ? {} : { linkpath: paxLink }),
    ...(paxSize === undefined ? {} : { size: paxSize }),
  };
}

function memberKind(typeflag: string): TarMember['kind'] {
  const type = ENTRY_TYPES[typeflag];
  return type === 'file' || type === 'symlink' || type === 'hardlink' || type === 'dir' ? type : 'other';
}

function normalizeName(name: string): string {
  return path.posix.normalize(name.replace(/^(\.\/)+/, '')).replace(/\/$/, '');
}
