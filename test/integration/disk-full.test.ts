// Issue 10, defect 5: a store whose file system fills during a pull (full or partial) ends in exit
// 7 with one `skiff:` line saying so, never a crash or "does not decompress"; the pull removes its
// own staging, and the store is left as it was.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MODERN_SKOPEO, pushChunkedPair } from '../harness/chunked-pair.js';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { diffSnapshots, snapshotStore } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

const registry = inject('registry');
const isRoot = process.getuid?.() === 0;
const hasModernSkopeo = fs.existsSync(MODERN_SKOPEO);

let work: { dir: string; cleanup: () => void };
let mount: string;
let mounted = false;

beforeAll(() => {
  if (!isRoot) return;
  work = tempDir('skiff-disk-full-');
  mount = path.join(work.dir, 'small-disk');
  fs.mkdirSync(mount);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mount]);
  mounted = true;
});

afterAll(() => {
  if (mounted) execFileSync('umount', [mount]);
  work?.cleanup();
});

/** Fills the tmpfs until ENOSPC, then frees `leave` bytes: the next pull runs out part-way. */
function fillDisk(leave: number): string {
  const filler = path.join(mount, 'filler');
  const fd = fs.openSync(filler, 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    fs.closeSync(fd);
  }
  fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - leave));
  return filler;
}

/** The pull must fail for want of space, say so on one line, and leave the store as it was. */
async function expectNoSpace(store: string, args: string[], mentions: string[], leave = 16 * 1024) {
  const before = snapshotStore(store);
  const filler = fillDisk(leave);
  try {
    const result = await runCli(['pull', ...args], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(7);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^skiff: no space left on .* while writing the store at /);
    expect(lines[0]).toContain(store);
    for (const m of mentions) expect(lines[0]).toContain(m);
    expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([]);
    expect(fs.readdirSync(path.join(store, 'sessions'))).toEqual([]);
    expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
  } finally {
    fs.rmSync(filler);
  }
}

describe.skipIf(!isRoot)(
  'a store on a file system that fills during a pull (mounts a tmpfs: needs root)',
  () => {
    it('a full pull: exit 7, one line, staging gone, store as before', async () => {
      const store = path.join(mount, 'store-full');
      const seed = writeTestLayout(path.join(work.dir, 'seed'), {
        layers: [{ tar: makeTar([{ name: 'etc/seed', content: 'seed\n' }]) }],
      });
      expect((await runCli(['pull', `oci:${seed.dir}:latest`], { SKIFF_STORE: store })).code).toBe(0);
      // Incompressible files, small (packed) and large (loose): 6 MiB that will not fit in 16 KiB.
      const files = Array.from({ length: 4 }, (_, i) => ({
        name: `small-${i}`,
        content: randomBytes(512 * 1024),
      }));
      files.push({ name: 'large', content: randomBytes(4 * 1024 * 1024) });
      const big = writeTestLayout(path.join(work.dir, 'big'), { layers: [{ tar: makeTar(files) }] });
      const ref = `oci:${big.dir}:latest`;
      await expectNoSpace(store, [ref], [ref, `layer ${big.layers[0]!.digest.slice(0, 19)}`]);
    });

    it.skipIf(!hasModernSkopeo)(
      'a partial pull: exit 7, one line, staging gone, store as before',
      async () => {
        const store = path.join(mount, 'store-partial');
        await pushChunkedPair(registry, 'disk-full/chunked', path.join(work.dir, 'chunked'));
        const v1 = `${registry}/disk-full/chunked:v1`;
        const v2 = `${registry}/disk-full/chunked:v2`;
        expect((await runCli(['pull', v1], { SKIFF_STORE: store })).code).toBe(0);
        const plan = await runCli(['pull', '--dry-run', '--json', v2], { SKIFF_STORE: store });
        const layers: Array<{ method: string; digest: string }> = JSON.parse(plan.stdout).layers;
        expect(layers.map((l) => l.method)).toEqual(['partial']);
        await expectNoSpace(store, [v2], [v2, `layer ${layers[0]!.digest.slice(0, 19)}`]);
      },
    );

    it('a pull that runs out while committing its records: exit 7, no temp file left', async () => {
      // Same layers as the gzip image (reused), new blob records: the one free page takes the
      // session file, and the first record written at commit finds the disk full.
      const store = path.join(mount, 'store-commit');
      expect((await runCli(['pull', `${registry}/fixtures/gzip:latest`], { SKIFF_STORE: store })).code).toBe(
        0,
      );
      const zstd = `${registry}/fixtures/zstd:latest`;
      const plan = await runCli(['pull', '--dry-run', '--json', zstd], { SKIFF_STORE: store });
      const layers: Array<{ method: string }> = JSON.parse(plan.stdout).layers;
      expect(layers.every((l) => l.method === 'reuse')).toBe(true);
      await expectNoSpace(store, [zstd], [zstd], 4096);
    });

    it('a read-only store: exit 7 saying so', async () => {
      const store = path.join(mount, 'store-full');
      const before = snapshotStore(store);
      execFileSync('mount', ['-o', 'remount,ro', mount]);
      try {
        const result = await runCli(['pull', `oci:${path.join(work.dir, 'seed')}:latest`], {
          SKIFF_STORE: store,
        });
        expect(result.code, result.stderr).toBe(7);
        expect(result.stderr).toMatch(
          /^skiff: read-only file system on tmpfs \(mounted at .*\) while writing the store at /,
        );
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
      } finally {
        execFileSync('mount', ['-o', 'remount,rw', mount]);
      }
      expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
    });
  },
);
