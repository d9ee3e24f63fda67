// What the gzip and zstd worker-pull tests share: a layer over the decode worker's threshold, a
// store seeded so that its tmp/ exists, and the two verdicts (refused with nothing stored; pulled
// into the same tree as its tar).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { WORKER_FROM_BYTES } from '../../src/formats/decode-worker.js';
import { runCli, tempDir } from './cli.js';
import { writeTestLayout } from './layout.js';
import { pseudoRandomBytes } from './random.js';
import { diffSnapshots, snapshotStore } from './snapshot.js';
import { makeTar } from './tar-writer.js';

/** A tar of one incompressible file (so the blob is over the worker's threshold) and 300 small ones. */
export function workerLayerTar(seed: number): { big: Buffer; tar: Buffer } {
  const big = pseudoRandomBytes(WORKER_FROM_BYTES + 512 * 1024, seed);
  const small = Array.from({ length: 300 }, (_, i) => ({
    name: `etc/f${i}`,
    content: `file ${i}\n`.repeat(i),
  }));
  return { big, tar: makeTar([{ name: 'big.bin', content: big }, ...small]) };
}

/** A work directory and a store holding one small image (so it has its directories). */
export async function seededStore(
  prefix: string,
): Promise<{ dir: string; store: string; cleanup: () => void }> {
  const work = tempDir(prefix);
  const store = path.join(work.dir, 'store');
  const seed = writeTestLayout(path.join(work.dir, 'seed'), {
    layers: [{ tar: makeTar([{ name: 'etc/seed', content: 'seed\n' }]) }],
  });
  expect((await runCli(['pull', `oci:${seed.dir}:latest`], { SKIFF_STORE: store })).code).toBe(0);
  return { ...work, store };
}

/**
 * Pulls `ref` into `store`, expecting exit 4 with one `skiff:` line naming the layer (by its digest
 * or the digest's first 12 digits) and `cause`, and nothing stored or left in tmp/.
 */
export async function expectRefused(
  store: string,
  ref: string,
  digest: string,
  cause: RegExp | string,
  flags: string[] = [],
): Promise<string> {
  const before = snapshotStore(store);
  const result = await runCli(['pull', ...flags, ref], { SKIFF_STORE: store });
  expect(result.code, result.stderr).toBe(4);
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^skiff: /);
  expect(lines[0]).toContain(digest.slice(0, 'sha256:'.length + 12));
  expect(lines[0]).toMatch(cause);
  expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([]);
  expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
  return lines[0]!;
}

/**
 * Pulls `ref` (a one-layer image of `workerLayerTar`'s tar) into `store`: committed under its
 * DiffID, fsck clean, and unpacked into `dir` as the tar's files.
 */
export async function expectPulledWhole(
  store: string,
  ref: string,
  diffID: string,
  big: Buffer,
  dir: string,
): Promise<void> {
  const pulled = await runCli(['pull', '--json', ref], { SKIFF_STORE: store });
  expect(pulled.code, pulled.stderr).toBe(0);
  expect(JSON.parse(pulled.stdout).layers[0].diffID).toBe(diffID);
  const fsck = await runCli(['fsck'], { SKIFF_STORE: store });
  expect(fsck.code, fsck.stderr).toBe(0);
  expect((await runCli(['unpack', ref, dir], { SKIFF_STORE: store })).code).toBe(0);
  expect(fs.readFileSync(path.join(dir, 'big.bin')).equals(big)).toBe(true);
  expect(fs.readFileSync(path.join(dir, 'etc/f299'), 'utf8')).toBe('file 299\n'.repeat(299));
}
