// Issue 10, defect 1: whiteouts of "", "." and ".." (or with something beneath them) are refused
// when a layer is pulled, and unpack never deletes or creates outside its target, whatever the
// store holds.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { readTarSplit, type StoredEntry, TarSplitWriter } from '../../src/store/index.js';
import { RootFs } from '../../src/unpack/rootfs.js';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { diffSnapshots, snapshot, snapshotStore } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

const HOSTILE_WHITEOUTS = ['.wh...', '.wh.', 'dir/.wh..', '.wh./x'];

let work: { dir: string; cleanup: () => void };
let store: string;

beforeAll(async () => {
  work = tempDir('skiff-whiteouts-');
  store = path.join(work.dir, 'store');
  // A store that already holds an image, so "unchanged" means something.
  const seed = writeTestLayout(path.join(work.dir, 'seed'), { layers: [{ tar: baseTar() }] });
  expect((await runCli(['pull', `oci:${seed.dir}:latest`], { SKIFF_STORE: store })).code).toBe(0);
});
afterAll(() => work.cleanup());

function baseTar(): Buffer {
  return makeTar([
    { name: 'dir/', type: 'dir' },
    { name: 'dir/file', content: 'lower\n' },
    { name: 'victim', content: 'hidden by the upper layer\n' },
  ]);
}

describe('hostile whiteouts are refused at pull', () => {
  for (const [i, name] of HOSTILE_WHITEOUTS.entries()) {
    it(`"${name}": exit 4 naming the entry, nothing committed`, async () => {
      const tar = makeTar([{ name: 'dir/', type: 'dir' }, { name }]);
      const layout = writeTestLayout(path.join(work.dir, `hostile-${i}`), { layers: [{ tar }] });
      const before = snapshotStore(store);
      const result = await runCli(['pull', `oci:${layout.dir}:latest`], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(4);
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^skiff: /);
      expect(lines[0]).toContain(`"${name}"`);
      expect(lines[0]).toContain('invalid whiteout');
      expect(lines[0]).toContain(layout.layers[0]!.digest.slice(0, 19));
      expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
    });
  }
});

describe('unpack of a store that already holds a hostile whiteout', () => {
  let image: string;
  let upperTarSplit: string;
  let original: Buffer;

  beforeAll(async () => {
    // A valid image whose upper layer whites out "victim"; the test then renames that whiteout in
    // the store's own records, as a damaged or hand-edited store (or an older skiff) would hold it.
    const upper = makeTar([{ name: '.wh.victim' }]);
    const layout = writeTestLayout(path.join(work.dir, 'valid'), {
      layers: [{ tar: baseTar() }, { tar: upper }],
    });
    image = `oci:${layout.dir}:latest`;
    expect((await runCli(['pull', image], { SKIFF_STORE: store })).code).toBe(0);
    const diffID = layout.layers[1]!.diffID as Digest;
    upperTarSplit = path.join(store, 'layers/sha256', diffID.slice(7), 'tarsplit.jsonl.zst');
    original = fs.readFileSync(upperTarSplit);
  });

  afterAll(() => {
    fs.rmSync(upperTarSplit, { force: true });
    fs.writeFileSync(upperTarSplit, original, { mode: 0o444 });
  });

  for (const [i, name] of HOSTILE_WHITEOUTS.entries()) {
    it(`"${name}": exit 4 naming it, nothing outside the target touched`, async () => {
      await rewriteStoredEntry(upperTarSplit, original, '.wh.victim', { path: name });
      const parent = path.join(work.dir, `unpack-${i}`);
      fs.mkdirSync(parent);
      fs.writeFileSync(path.join(parent, 'sentinel'), 'must survive\n');
      const outside = snapshot(work.dir);
      const result = await runCli(['unpack', image, path.join(parent, 'target')], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(4);
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toContain(`"${name}"`);
      expect(fs.readFileSync(path.join(parent, 'sentinel'), 'utf8')).toBe('must survive\n');
      // Nothing else moved either: no target, no staging left behind, the store as it was.
      expect(diffSnapshots(outside, snapshot(work.dir))).toEqual([]);
    });
  }
});

describe('unpack of a store whose records name an object by a path, not a digest', () => {
  it('exit 4 naming it; nothing outside the store is read', async () => {
    const big = makeTar([{ name: 'big', content: Buffer.alloc(2 * 1024 * 1024, 7) }]);
    const layout = writeTestLayout(path.join(work.dir, 'loose'), { layers: [{ tar: big }] });
    const image = `oci:${layout.dir}:latest`;
    expect((await runCli(['pull', image], { SKIFF_STORE: store })).code).toBe(0);
    const tarSplit = path.join(
      store,
      'layers/sha256',
      layout.layers[0]!.diffID.slice(7),
      'tarsplit.jsonl.zst',
    );
    const original = fs.readFileSync(tarSplit);
    const secret = path.join(work.dir, 'secret');
    fs.writeFileSync(secret, 'not for the image\n');
    // objects/sha256/<first two>/<digest>: ".." and enough "../" reach the root, then the secret.
    const digest = `sha256:${'../'.repeat(40)}${secret.slice(1)}` as Digest;
    try {
      await rewriteStoredEntry(tarSplit, original, 'big', {
        digest,
        size: fs.statSync(secret).size + 2 * 1024 * 1024,
      });
      const target = path.join(work.dir, 'unpack-digest', 'target');
      const result = await runCli(['unpack', image, target], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(4);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain('is not a sha256 digest');
      expect(fs.existsSync(target)).toBe(false);
    } finally {
      fs.rmSync(tarSplit, { force: true });
      fs.writeFileSync(tarSplit, original, { mode: 0o444 });
    }
  });
});

describe('RootFs never resolves outside its root', () => {
  it('refuses a last component of "", "." or ".." for creation and deletion alike', async () => {
    const parent = tempDir('skiff-rootfs-');
    try {
      const root = path.join(parent.dir, 'root');
      fs.mkdirSync(path.join(root, 'dir'), { recursive: true });
      const rootfs = new RootFs(root);
      for (const relative of ['..', '', '.', 'dir/..', 'dir/../..', 'dir/.']) {
        await expect(rootfs.existing(relative), relative).rejects.toThrow(/outside the unpack root/);
        await expect(rootfs.creatable(relative), relative).rejects.toThrow(/outside the unpack root/);
      }
      expect(await rootfs.existing('dir/x')).toBe(path.join(root, 'dir/x'));
      // ".." in the middle stops at the root, as in a chroot.
      expect(await rootfs.creatable('../../x')).toBe(path.join(root, 'x'));
    } finally {
      parent.cleanup();
    }
  });
});

/** Rewrites a stored layer's tar-split with one entry changed, bypassing every pull-time check. */
async function rewriteStoredEntry(file: string, from: Buffer, match: string, change: Partial<StoredEntry>) {
  const source = path.join(work.dir, 'original.tarsplit');
  fs.writeFileSync(source, from);
  fs.rmSync(file, { force: true });
  const writer = new TarSplitWriter(file);
  let changed = 0;
  for await (const record of readTarSplit(source)) {
    if ('r' in record) writer.raw(record.r);
    else if (record.e.path === match) {
      changed++;
      await writer.entry({ ...record.e, ...change });
    } else await writer.entry(record.e);
  }
  await writer.finish();
  fs.rmSync(source);
  expect(changed).toBe(1);
}
