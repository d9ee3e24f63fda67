// Issue 2: two pulls into one store at once, and a pull killed with SIGKILL mid-layer then re-run.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { expectedFixtureRootfs } from '../harness/expected-trees.js';
import { writeTestLayout } from '../harness/layout.js';
import { skopeoCopy } from '../harness/registry.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

const registry = inject('registry');
const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');
let work: { dir: string; cleanup: () => void };
let bigRef: string;
let bigContent: Buffer;

beforeAll(async () => {
  work = tempDir('skiff-concurrency-');
  // A layer big enough that a kill lands mid-way: 48 MiB of incompressible content.
  bigContent = randomBytes(48 * 1024 * 1024);
  const tar = makeTar([
    { name: 'data/', type: 'dir' },
    { name: 'data/small.txt', content: 'small\n' },
    { name: 'data/big.bin', content: bigContent },
  ]);
  const layout = writeTestLayout(path.join(work.dir, 'big'), { layers: [{ tar }] });
  bigRef = `${registry}/concurrency/big:${path.basename(work.dir).toLowerCase()}`;
  await skopeoCopy(`oci:${layout.dir}:latest`, `docker://${bigRef}`, ['--preserve-digests']);
});
afterAll(() => work?.cleanup());

describe('concurrent pulls into one store', () => {
  it('both succeed, overlapping layers included, and the store reads back correctly', async () => {
    const store = path.join(work.dir, 'shared-store');
    const env = { SKIFF_STORE: store };
    const refs = ['gzip', 'zstd', 'v2s2', 'plain'].map((f) => `${registry}/fixtures/${f}:latest`);
    const results = await Promise.all([
      ...refs.map((r) => runCli(['pull', r], env)),
      runCli(['pull', bigRef], env),
      runCli(['pull', bigRef], env),
    ]);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const images = JSON.parse((await runCli(['images', '--json'], env)).stdout);
    expect(images.flatMap((i: { names: string[] }) => i.names).sort()).toEqual([...refs, bigRef].sort());
    const expected = expectedFixtureRootfs();
    try {
      for (const ref of refs.slice(0, 2)) {
        const target = path.join(work.dir, `rootfs-${refs.indexOf(ref)}`);
        expect((await runCli(['unpack', ref, target], env)).code).toBe(0);
        expect(
          diffSnapshots(snapshot(expected, { mtimes: true }), snapshot(target, { mtimes: true })),
        ).toEqual([]);
      }
    } finally {
      fs.rmSync(expected, { recursive: true, force: true });
    }
  });
});

describe('a pull killed mid-layer', () => {
  it('leaves a consistent store that a re-run completes and gc tidies', async () => {
    const store = path.join(work.dir, 'crash-store');
    const env = { SKIFF_STORE: store };
    expect((await runCli(['pull', `${registry}/fixtures/gzip:latest`], env)).code).toBe(0);
    const before = snapshot(store);

    const child = spawn(process.execPath, [BIN, 'pull', bigRef], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // Wait until the big file is being staged (a temp object of over 1 MiB exists), then kill -9.
    const killedMidLayer = await waitFor(() => stagedBytes(path.join(store, 'tmp')) > 1024 * 1024, 20_000);
    child.kill('SIGKILL');
    expect(await exited).toMatchObject({ signal: 'SIGKILL' });
    expect(killedMidLayer).toBe(true);

    // Nothing half-written is visible: the same images, the same layers, the same names (what
    // the pull keeps for resuming, in resume/, is not the store's content).
    const after = snapshot(store);
    const visible = (s: Map<string, unknown>) =>
      new Map(
        [...s].filter(([p]) => !p.startsWith('tmp') && !p.startsWith('sessions') && !p.startsWith('resume')),
      );
    expect(diffSnapshots(visible(before) as never, visible(after) as never)).toEqual([]);
    expect(JSON.parse((await runCli(['images', '--json'], env)).stdout)).toHaveLength(1);

    const rerun = await runCli(['pull', bigRef, '--json'], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    const target = path.join(work.dir, 'crash-rootfs');
    expect((await runCli(['unpack', bigRef, target], env)).code).toBe(0);
    const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(hash(fs.readFileSync(path.join(target, 'data/big.bin')))).toBe(hash(bigContent));

    const gc = JSON.parse((await runCli(['gc', '--json'], env)).stdout);
    expect(gc.stagingRemoved).toBeGreaterThanOrEqual(1);
    expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([]);
    expect(JSON.parse((await runCli(['images', '--json'], env)).stdout)).toHaveLength(2);
  });
});

function stagedBytes(dir: string): number {
  let total = 0;
  const walk = (p: string) => {
    for (const entry of fs.readdirSync(p, { withFileTypes: true })) {
      const full = path.join(p, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) total = Math.max(total, fs.statSync(full).size);
    }
  };
  try {
    walk(dir);
  } catch {
    return 0;
  }
  return total;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}
