// Test layers GNU tar will not write (it refuses "../" names on purpose; xattrs, odd times, PAX),
// written through skiff's own header codec: a test that wants a malformed header damages these.
import { END_OF_ARCHIVE, padding, paxRecord, writeHeader } from '../../src/formats/tar-header.js';

export { paxRecord };

export interface TarSpec {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
}

const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', dir: '5' } as const;

export function makeTar(entries: TarSpec[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const content = type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    const mode = entry.mode ?? (type === 'dir' ? 0o755 : 0o644);
    const header = ustarHeader({
      name: entry.name,
      type: TYPEFLAG[type],
      mode,
      size: content.length,
      ...(entry.linkname ? { linkname: entry.linkname } : {}),
    });
    blocks.push(header, padded(content));
  }
  blocks.push(END);
  return Buffer.concat(blocks);
}

// ---- single headers, for archives GNU tar will not write on demand (xattrs, odd times, PAX) ----

export interface HeaderFields {
  name: string;
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export function ustarHeader(f: HeaderFields): Buffer {
  return writeHeader({
    name: f.name,
    typeflag: f.type ?? '0',
    mode: f.mode ?? 0o644,
    uid: f.uid ?? 0,
    gid: f.gid ?? 0,
    size: f.size ?? 0,
    mtime: f.mtime ?? 1_700_000_000,
    linkname: f.linkname ?? '',
    uname: 'root',
    gname: 'root',
    devmajor: f.devmajor ?? 0,
    devminor: f.devminor ?? 0,
  });
}

export function padded(data: Buffer): Buffer {
  return Buffer.concat([data, padding(data.length)]);
}

export function entry(
  f: HeaderFields,
  content: Buffer = Buffer.alloc(0),
  pax: Array<[string, Buffer | string]> = [],
): Buffer {
  const parts: Buffer[] = [];
  if (pax.length > 0) {
    const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
    parts.push(ustarHeader({ name: 'PaxHeaders/x', type: 'x', size: records.length }), padded(records));
  }
  parts.push(ustarHeader({ ...f, size: content.length }), padded(content));
  return Buffer.concat(parts);
}

export const END = END_OF_ARCHIVE;
