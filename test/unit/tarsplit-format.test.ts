// The store's tar-split format 2 (binary entries after a version frame): every field of an entry
// comes back as written, format-1 files (JSON entries) written by an older skiff still read, and a
// file of a newer format is refused by name rather than as damage.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compress, decompress } from 'zstd-napi';
import { VerificationError } from '../../src/errors/index.js';
import {
  readTarSplit,
  readTarSplitSync,
  type StoredEntry,
  type TarSplitRecord,
  TarSplitWriter,
} from '../../src/store/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-tarsplit-format-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const ENTRIES: StoredEntry[] = [
  { path: 'dir', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 },
  {
    path: 'dir/fïlé ✓',
    type: 'file',
    mode: 0o4755,
    uid: 4_000_000_000,
    gid: 2 ** 40,
    uname: 'ünïcode',
    gname: 'staff',
    size: 12,
    mtime: 1_700_000_000.25,
    xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 255]).toString('base64'), 'user.x': 'eA==' },
    digest: `sha256:${'ab'.repeat(32)}`,
  },
  { path: 'dir/link', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, link: 'dir/fïlé ✓' },
  { path: 'dir/sym', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1, link: '' },
  {
    path: 'dev/null',
    type: 'char',
    mode: 0o666,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 2,
    devmajor: 1,
    devminor: 3,
  },
  { path: 'fifo', type: 'fifo', mode: 0o600, uid: 1, gid: 1, size: 0, mtime: -5 },
  // A digest of another shape (only a damaged or edited store holds one): kept as written, for
  // the reader to refuse.
  {
    path: 'odd',
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 3,
    mtime: 3,
    digest: 'sha256:../x' as never,
  },
];

async function write(name: string): Promise<string> {
  const file = path.join(dir, name);
  const writer = new TarSplitWriter(file);
  for (const [i, entry] of ENTRIES.entries()) {
    writer.raw(Buffer.alloc(512, i));
    await writer.entry(entry);
  }
  writer.raw(Buffer.alloc(1024));
  await writer.finish();
  return file;
}

async function all(file: string): Promise<TarSplitRecord[]> {
  const out: TarSplitRecord[] = [];
  for await (const record of readTarSplit(file)) out.push(record);
  return out;
}

const entriesOf = (records: TarSplitRecord[]) => records.flatMap((r) => ('e' in r ? [r.e] : []));

/** A file as a format-1 writer wrote it: JSON entries, no version frame. */
function formatOne(file: string, records: Array<{ kind: number; payload: Buffer }>): void {
  const frames = records.map(({ kind, payload }) => {
    const header = Buffer.alloc(5);
    header[0] = kind;
    header.writeUInt32LE(payload.length, 1);
    return Buffer.concat([header, payload]);
  });
  fs.writeFileSync(file, compress(Buffer.concat(frames)));
}

describe('the store tar-split, format 2', () => {
  it('starts with its version and keeps every field of every entry', async () => {
    const file = await write('all.tsplit');
    const bytes = decompress(fs.readFileSync(file));
    // 'v', length 4, version 2; then the first raw frame and a binary entry ('E').
    expect([...bytes.subarray(0, 9)]).toEqual([0x76, 4, 0, 0, 0, 2, 0, 0, 0]);
    expect(bytes[9]).toBe(0x72);
    expect(bytes[9 + 5 + 512]).toBe(0x45);
    const records = await all(file);
    expect(entriesOf(records)).toEqual(ENTRIES);
    expect([...readTarSplitSync(file)]).toEqual(records);
    expect(records.filter((r) => 'r' in r).map((r) => ('r' in r ? r.r.length : 0))).toEqual([
      512, 512, 512, 512, 512, 512, 512, 1024,
    ]);
  });

  it('reads a format-1 file (JSON entries) as written before', async () => {
    const file = path.join(dir, 'format-1.tsplit');
    formatOne(file, [
      { kind: 0x72, payload: Buffer.alloc(512, 1) },
      ...ENTRIES.map((e) => ({ kind: 0x65, payload: Buffer.from(JSON.stringify(e)) })),
      { kind: 0x72, payload: Buffer.alloc(1024) },
    ]);
    const records = await all(file);
    expect(entriesOf(records)).toEqual(ENTRIES);
    expect([...readTarSplitSync(file)]).toEqual(records);
    expect(entriesOf([...readTarSplitSync(file, { entriesOnly: true, mentioning: 'sym' })])).toEqual([
      ENTRIES[3],
    ]);
  });

  it('refuses a file of a newer format by name, and a damaged entry as damage', async () => {
    const newer = path.join(dir, 'format-3.tsplit');
    const version = Buffer.alloc(4);
    version.writeUInt32LE(3);
    formatOne(newer, [{ kind: 0x76, payload: version }]);
    await expect(all(newer)).rejects.toThrow(/tar-split format 3, written by a newer skiff/);
    expect(() => [...readTarSplitSync(newer)]).toThrow(/written by a newer skiff/);

    const damaged = path.join(dir, 'damaged.tsplit');
    const good = decompress(fs.readFileSync(await write('for-damage.tsplit')));
    // The second entry's frame claims more text than it holds: cut its path's length field.
    const at = good.indexOf(Buffer.from('dir/f'));
    good.writeUInt32LE(1_000_000, at - 4);
    fs.writeFileSync(damaged, compress(good));
    await expect(all(damaged)).rejects.toThrow(VerificationError);
    expect(() => [...readTarSplitSync(damaged)]).toThrow(/store damaged/);
  });
});
