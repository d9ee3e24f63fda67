// readTarSplitSync (unpack's reader) must give exactly what readTarSplit gives: the same records,
// filters and errors, whatever the frames' sizes against its buffers.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VerificationError } from '../../src/errors/index.js';
import { readTarSplit, readTarSplitSync, type StoredEntry, TarSplitWriter } from '../../src/store/index.js';
import { pseudoRandomBytes } from '../harness/random.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-tarsplit-sync-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const entry = (i: number): StoredEntry => ({
  path: i % 10 === 0 ? `d/.wh.gone-${i}` : `d/file-${i}`,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: 1_700_000_000 + i,
});

/** Entries and raw segments, among them raw runs far larger than the reader's buffers. */
async function written(name: string): Promise<string> {
  const file = path.join(dir, name);
  const writer = new TarSplitWriter(file);
  for (let i = 0; i < 3000; i++) {
    writer.raw(i % 500 === 7 ? Buffer.alloc(3_000_000, i) : pseudoRandomBytes(512, i));
    await writer.entry(entry(i));
  }
  writer.raw(Buffer.alloc(1024));
  await writer.finish();
  return file;
}

type Record = { r: Buffer } | { e: StoredEntry };

/** Raw segments by digest: comparing megabytes element by element would take minutes. */
const comparable = (record: Record) =>
  'r' in record ? { r: createHash('sha256').update(record.r).digest('hex'), bytes: record.r.length } : record;

async function collect(records: AsyncIterable<Record>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const record of records) out.push(comparable(record));
  return out;
}

describe('readTarSplitSync', () => {
  it('gives the records readTarSplit gives, with and without filters', async () => {
    const file = await written('all.tsplit');
    expect([...readTarSplitSync(file)].map(comparable)).toEqual(await collect(readTarSplit(file)));
    for (const filter of [{ entriesOnly: true }, { entriesOnly: true, mentioning: '.wh.' }]) {
      const records = [...readTarSplitSync(file, filter)].map(comparable);
      expect(records).toEqual(await collect(readTarSplit(file, filter)));
      expect(records.length).toBe(filter.mentioning ? 300 : 3000);
    }
  });

  it('refuses a truncated or missing file as a damaged store', async () => {
    const file = await written('cut.tsplit');
    const cut = path.join(dir, 'cut-short.tsplit');
    fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, Math.floor(fs.statSync(file).size / 2)));
    expect(() => [...readTarSplitSync(cut)]).toThrow(VerificationError);
    expect(() => [...readTarSplitSync(path.join(dir, 'absent.tsplit'))]).toThrow(VerificationError);
  });
});
