// A partially pulled layer is the layer: its store records (entries, raw tar bytes, objects) and
// the tree unpacked from them are those of a full pull of the same layer, for every kind of entry
// a tar holds (dirs, modes with setuid, owners, fractional PAX times, xattrs, long PAX names, hard
// and symbolic links, fifos, empty files, whiteouts and opaque directories). And the rebuild still
// reads and hashes every reused object: one damaged in the store fails the DiffID proof.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarSplit } from '../../src/store/index.js';
import { MODERN_SKOPEO } from '../harness/chunked-pair.js';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { skopeoCopy } from '../harness/registry.js';
import { diffSnapshots, snapshot, snapshotStore } from '../harness/snapshot.js';
import { END, entry } from '../harness/tar-writer.js';

const hasModernSkopeo = fs.existsSync(MODERN_SKOPEO);
const FILES = 60;
const CHANGED = [7, 41];
/** A file v1 and v2 share: its object is reused by v2's partial pull. */
const SHARED = 3;

const content = (i: number, version: 1 | 2) =>
  pseudoRandomBytes(6000 + i * 97, version === 2 && CHANGED.includes(i) ? 1000 + i : i);

/** The base layer: what the upper layer's whiteouts remove. */
function baseTar(): Buffer {
  return Buffer.concat([
    entry({ name: 'app/', type: '5', mode: 0o755 }),
    entry({ name: 'app/gone', mode: 0o644 }, Buffer.from('whited out\n')),
    entry({ name: 'app/opaque/', type: '5', mode: 0o755 }),
    entry({ name: 'app/opaque/old', mode: 0o644 }, Buffer.from('hidden by the opaque dir\n')),
    END,
  ]);
}

/** The upper layer, chunked: every kind of entry; v2 changes two files. */
function upperTar(version: 1 | 2): Buffer {
  const parts = [
    entry({ name: 'app/', type: '5', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_600_000_000 }),
    entry({ name: 'app/bin/', type: '5', mode: 0o755 }),
    entry({ name: 'app/bin/tool', mode: 0o4755, uid: 0, gid: 0 }, Buffer.from('#!/bin/sh\necho tool\n')),
  ];
  for (let i = 0; i < FILES; i++) {
    const name = `app/data/file-${String(i).padStart(2, '0')}.bin`;
    parts.push(
      entry(
        { name, mode: i % 3 ? 0o644 : 0o600, uid: i, gid: 100, mtime: 1_650_000_000 + i },
        content(i, version),
      ),
    );
  }
  parts.push(
    entry({ name: 'app/hard', type: '1', linkname: `app/data/file-0${SHARED}.bin` }),
    entry({ name: 'app/sym', type: '2', linkname: 'data/file-05.bin' }),
    entry({ name: 'app/fifo', type: '6', mode: 0o640 }),
    entry({ name: 'app/empty', mode: 0o444 }),
    entry({ name: 'app/xattr', mode: 0o644 }, Buffer.from('with attributes\n'), [
      ['SCHILY.xattr.user.skiff', 'a value'],
      ['SCHILY.xattr.user.binary', Buffer.from([0, 1, 2, 255])],
      ['mtime', '1700000000.25'],
    ]),
    entry({ name: 'app/long-placeholder', mode: 0o644 }, Buffer.from('a long name\n'), [
      ['path', `app/${'d'.repeat(120)}/long-name.txt`],
    ]),
    entry({ name: 'app/.wh.gone' }),
    entry({ name: 'app/opaque/', type: '5', mode: 0o700 }),
    entry({ name: 'app/opaque/.wh..wh..opq' }),
    entry({ name: 'app/opaque/new', mode: 0o644 }, Buffer.from('the new content\n')),
    END,
  );
  return Buffer.concat(parts);
}

let work: { dir: string; cleanup: () => void };
const refs = { v1: '', v2: '' };
let upperDiffIDs: { v1: string; v2: string };

beforeAll(async () => {
  if (!hasModernSkopeo) return;
  work = tempDir('skiff-partial-records-');
  const base = baseTar();
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  upperDiffIDs = { v1: sha(upperTar(1)), v2: sha(upperTar(2)) };
  for (const version of [1, 2] as const) {
    const plain = path.join(work.dir, `plain-v${version}`);
    writeTestLayout(plain, {
      layers: [
        { tar: base, compress: 'none' },
        { tar: upperTar(version), compress: 'none' },
      ],
    });
    const chunked = path.join(work.dir, `chunked-v${version}`);
    await skopeoCopy(
      `oci:${plain}:latest`,
      `oci:${chunked}:latest`,
      ['--dest-compress-format', 'zstd:chunked'],
      MODERN_SKOPEO,
    );
    refs[`v${version}`] = `oci:${chunked}:latest`;
  }
}, 300_000);

afterAll(() => work?.cleanup());

async function pull(store: string, ref: string, ...flags: string[]) {
  const result = await runCli(['pull', ref, '--json', ...flags], { SKIFF_STORE: store });
  return { ...result, report: result.code === 0 ? JSON.parse(result.stdout) : undefined };
}

/** A layer's tar-split as comparable records: raw bytes as hex, entries as they are. */
async function records(store: string, diffID: string) {
  const file = path.join(store, 'layers/sha256', diffID.slice(7), 'tarsplit.jsonl.zst');
  const out: unknown[] = [];
  for await (const record of readTarSplit(file))
    out.push('r' in record ? record.r.toString('hex') : record.e);
  return out;
}

function layerFacts(store: string, diffID: string) {
  const dir = path.join(store, 'layers/sha256', diffID.slice(7));
  const {
    diffID: id,
    tarSize,
    entries,
    contentBytes,
  } = JSON.parse(fs.readFileSync(path.join(dir, 'layer.json'), 'utf8'));
  return {
    // Not chunkCount: a pull asked for with --mode full reads no TOC, so it records no chunks.
    record: { id, tarSize, entries, contentBytes },
    objects: fs.readFileSync(path.join(dir, 'objects.idx')).toString('hex'),
  };
}

describe.skipIf(!hasModernSkopeo)('a partially pulled layer', () => {
  it('has the records, objects and unpacked tree of a full pull of the same layer', async () => {
    const partialStore = path.join(work.dir, 'store-partial');
    const fullStore = path.join(work.dir, 'store-full');
    expect((await pull(partialStore, refs.v1)).code).toBe(0);
    const partial = await pull(partialStore, refs.v2);
    expect(partial.code, partial.stderr).toBe(0);
    expect(partial.report.layers.map((l: { method: string }) => l.method)).toEqual(['reuse', 'partial']);
    const full = await pull(fullStore, refs.v2, '--mode', 'full');
    expect(full.code, full.stderr).toBe(0);
    expect(full.report.layers.map((l: { method: string }) => l.method)).toEqual(['full', 'full']);

    const diffID = upperDiffIDs.v2;
    const partialRecords = await records(partialStore, diffID);
    expect(partialRecords).toEqual(await records(fullStore, diffID));
    expect(partialRecords.length).toBeGreaterThan(2 * (FILES + 12));
    expect(partialRecords).toContainEqual(
      expect.objectContaining({
        path: 'app/xattr',
        mtime: 1_700_000_000.25,
        xattrs: {
          'user.binary': Buffer.from([0, 1, 2, 255]).toString('base64'),
          'user.skiff': 'YSB2YWx1ZQ==',
        },
      }),
    );
    expect(partialRecords).toContainEqual(expect.objectContaining({ path: 'app/bin/tool', mode: 0o4755 }));
    expect(layerFacts(partialStore, diffID)).toEqual(layerFacts(fullStore, diffID));

    const trees = { partial: path.join(work.dir, 'tree-partial'), full: path.join(work.dir, 'tree-full') };
    expect((await runCli(['unpack', refs.v2, trees.partial], { SKIFF_STORE: partialStore })).code).toBe(0);
    expect((await runCli(['unpack', refs.v2, trees.full], { SKIFF_STORE: fullStore })).code).toBe(0);
    const tree = snapshot(trees.partial, { mtimes: true });
    expect(diffSnapshots(snapshot(trees.full, { mtimes: true }), tree)).toEqual([]);
    expect(tree.has('app/gone')).toBe(false);
    expect(tree.has('app/opaque/old')).toBe(false);
    expect(tree.get('app/fifo')?.type).toBe('fifo');
    expect(tree.get('app/hard')?.sha256).toBe(tree.get(`app/data/file-0${SHARED}.bin`)?.sha256);
  });

  it('is refused when a reused object in the store was damaged: the DiffID proof reads it', async () => {
    const store = path.join(work.dir, 'store-damaged');
    expect((await pull(store, refs.v1)).code).toBe(0);
    damageObject(store, content(SHARED, 1));
    const before = snapshotStore(store);
    // convert-only: a rebuild that does not hash to the DiffID is a violation (exit 3), and nothing
    // of v2 is committed.
    const refused = await pull(store, refs.v2, '--mode', 'convert-only');
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toContain('toc-mismatch');
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
    // auto: the same fact sends the layer to a full pull.
    const recovered = await pull(store, refs.v2);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.report.layers[1]).toMatchObject({ method: 'full', reasons: ['toc-mismatch'] });
  });
});

/** Flips a byte of `content`'s object in the store's packs (a damaged disk, an edit behind skiff). */
function damageObject(store: string, content: Buffer): void {
  const digest = createHash('sha256').update(content).digest();
  const packs = path.join(store, 'packs');
  for (const name of fs.readdirSync(packs).filter((n) => n.endsWith('.idx'))) {
    const index = fs.readFileSync(path.join(packs, name));
    for (let at = 16; at + 48 <= index.length; at += 48) {
      if (!index.subarray(at, at + 32).equals(digest)) continue;
      const offset = Number(index.readBigUInt64LE(at + 32));
      const pack = path.join(packs, name.replace(/\.idx$/, '.pack'));
      const fd = fs.openSync(pack, 'r+');
      const byte = Buffer.alloc(1);
      fs.readSync(fd, byte, 0, 1, offset + 100);
      byte[0] = byte[0]! ^ 0xff;
      fs.writeSync(fd, byte, 0, 1, offset + 100);
      fs.closeSync(fd);
      return;
    }
  }
  throw new Error('object not found in any pack');
}
