// A minimal ustar writer for hostile test layers (GNU tar refuses to write "../" names on purpose).

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

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\u0000`;
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
  const h = Buffer.alloc(512);
  h.write(f.name, 0, 100, 'utf8');
  h.write(octal(f.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(f.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(f.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(f.size ?? 0, 12), 124, 'latin1');
  h.write(octal(f.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write(f.type ?? '0', 156, 'latin1');
  h.write(f.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  h.write(octal(f.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(f.devminor ?? 0, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

export function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** "LEN KEY=VALUE\n" where LEN counts the whole record, itself included. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length++;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

export function entry(
  f: HeaderFields,
  content = Buffer.alloc(0),
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

export const END = Buffer.alloc(1024);
