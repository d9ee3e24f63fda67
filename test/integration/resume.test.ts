// Issue 10, "pulls that resume": a pull killed with SIGKILL mid-transfer keeps what it had fetched
// and verified, and running it again fetches only the rest. A proxy in front of a real registry
// stops forwarding after a number of bytes a seeded RNG chose, the test kills the CLI there, and
// the proxy counts what the resumed run fetches. The resumed result must be identical to a clean
// pull's (unpacked tree, and `save`, which proves every DiffID), and damaged resumable state must
// be detected and dropped, never committed.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom } from '../../fixtures/lib/trees.mjs';
import { MODERN_SKOPEO, type Tree, writeTreeLayout } from '../harness/chunked-pair.js';
import { runCli, tempDir } from '../harness/cli.js';
import { type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';
import { type StallProxy, startStallProxy } from '../harness/stall-proxy.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');
/** Layer sizes: a few MB by default; SKIFF_RESUME_MB=40 measures a realistic size. */
const MB = Number(process.env.SKIFF_RESUME_MB ?? 6);
const FILE = 256 * 1024;
const FILES = Math.round((MB * 1024 * 1024) / FILE);
const ITERATIONS = 3;
/** Each case runs several CLI pulls on a shared 2-core machine. */
const SLOW = 600_000;

/** Incompressible files, so the layer costs its size on the wire; v2 changes every other file. */
function tree(version: 1 | 2): Tree {
  const out: Tree = new Map();
  for (let i = 0; i < FILES; i++) {
    const changed = version === 2 && i % 2 === 0;
    out.set(
      `data/f${String(i).padStart(4, '0')}.bin`,
      pseudoRandom(`resume-${i}${changed ? '-v2' : ''}`, FILE),
    );
  }
  out.set('etc/version', Buffer.from(`v${version}\n`));
  return out;
}

/** mulberry32: the kill points are random but the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LayerJson {
  digest: string;
  method: string;
  size: number;
  bytesFetched: number;
  bytesResumed: number;
}
interface ReportJson {
  layers: LayerJson[];
  bytesFetched: number;
  bytesResumed: number;
  warnings: string[];
}

let work: { dir: string; cleanup: () => void };
let registry: RunningRegistry;
let proxy: StallProxy;
let storeCount = 0;

beforeAll(async () => {
  work = tempDir('skiff-resume-');
  registry = await startRegistry();
  proxy = await startStallProxy(registry.host);
  await skopeoCopy(writeTreeLayout(work.dir, 'gz', tree(1)), `docker://${registry.host}/full:v1`, [
    '--dest-compress-format',
    'gzip',
  ]);
  for (const version of [1, 2] as const) {
    await skopeoCopy(
      writeTreeLayout(work.dir, `chunked-v${version}`, tree(version)),
      `docker://${registry.host}/chunked:v${version}`,
      ['--dest-compress', '--dest-compress-format', 'zstd:chunked'],
      MODERN_SKOPEO,
    );
  }
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  work?.cleanup();
});

function newStore(): string {
  return path.join(work.dir, `store-${++storeCount}`);
}

async function pullJson(store: string, ref: string): Promise<ReportJson> {
  const result = await runCli(['pull', '--json', `${proxy.host}/${ref}`], { SKIFF_STORE: store });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as ReportJson;
}

/** Files of the resumable state, with their sizes (a record's temp file may vanish meanwhile). */
function resumeFiles(store: string): Array<{ file: string; size: number }> {
  const base = path.join(store, 'resume/sha256');
  const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  return list(base)
    .flatMap((hex) => list(path.join(base, hex)).map((f) => path.join(base, hex, f)))
    .flatMap((file) => {
      const stat = fs.statSync(file, { throwIfNoEntry: false });
      return stat ? [{ file, size: stat.size }] : [];
    });
}

/**
 * Starts a pull, lets `bytes` blob bytes through, waits (bounded) until it has written what it
 * will of them (its resumable state stops growing), and kills it with SIGKILL. Returns the blob
 * bytes it was sent.
 */
async function killedPull(store: string, ref: string, bytes: number): Promise<number> {
  proxy.reset();
  const stalled = proxy.stallAfter(bytes);
  const child: ChildProcess = spawn(process.execPath, [BIN, 'pull', `${proxy.host}/${ref}`], {
    env: { ...process.env, SKIFF_STORE: store, NO_COLOR: '1' },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await Promise.race([stalled, exited]);
    expect(child.exitCode, 'the pull finished before the kill').toBeNull();
    const written = () => resumeFiles(store).reduce((sum, f) => sum + f.size, 0);
    for (let i = 0, last = -1, still = 0; i < 200 && still < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = written();
      still = now > 0 && now === last ? still + 1 : 0;
      last = now;
    }
    return proxy.blobBytes();
  } finally {
    child.kill('SIGKILL');
    await exited;
    proxy.reset();
  }
}

/** The pulled image unpacked, and saved (save rebuilds every layer and checks its DiffID). */
async function proven(store: string, ref: string): Promise<Map<string, unknown>> {
  const dir = path.join(store, '..', `${path.basename(store)}-unpacked`);
  const unpacked = await runCli(['unpack', `${proxy.host}/${ref}`, dir], { SKIFF_STORE: store });
  expect(unpacked.code, unpacked.stderr).toBe(0);
  const saved = await runCli(['save', `${proxy.host}/${ref}`, `oci:${dir}-oci:x`], { SKIFF_STORE: store });
  expect(saved.code, saved.stderr).toBe(0);
  return snapshot(dir);
}

describe('a killed full pull (gzip)', () => {
  let clean: { fetched: number; tree: Map<string, unknown>; size: number };

  beforeAll(async () => {
    const store = newStore();
    proxy.reset();
    const report = await pullJson(store, 'full:v1');
    clean = {
      fetched: proxy.blobBytes(),
      tree: await proven(store, 'full:v1'),
      size: report.layers[0]!.size,
    };
    expect(report.bytesResumed).toBe(0);
    expect(resumeFiles(store)).toEqual([]);
  }, SLOW);

  it(
    'resumes from the verified prefix: at most the missing bytes fetched again, the same tree',
    async () => {
      const random = seeded(10);
      for (let i = 0; i < ITERATIONS; i++) {
        const store = newStore();
        const at = Math.floor(clean.size * (0.1 + 0.8 * random()));
        const sent = await killedPull(store, 'full:v1', at);
        proxy.reset();
        const report = await pullJson(store, 'full:v1');
        const fetched = proxy.blobBytes();
        const layer = report.layers[0]!;
        console.log(
          `full #${i}: size ${clean.size}, sent before the kill ${sent}, resumed ${layer.bytesResumed}, fetched on resume ${fetched}, clean pull ${clean.fetched}`,
        );
        // The prefix's record is rewritten every 256 KiB: a kill loses at most that of what arrived.
        expect(layer.bytesResumed).toBeGreaterThanOrEqual(sent - 256 * 1024);
        expect(layer.bytesResumed).toBeLessThanOrEqual(sent);
        // Exactly the missing bytes (the clean run's count includes the config blob).
        expect(fetched).toBe(clean.fetched - layer.bytesResumed);
        expect(layer.bytesFetched).toBe(clean.size - layer.bytesResumed);
        expect(diffSnapshots(clean.tree as never, (await proven(store, 'full:v1')) as never)).toEqual([]);
        // Committed: nothing is kept for resuming any more.
        expect(resumeFiles(store)).toEqual([]);
      }
    },
    SLOW,
  );

  it(
    'detects a damaged prefix on resume, discards it and fetches the blob again',
    async () => {
      const store = newStore();
      const at = Math.floor(clean.size / 2);
      await killedPull(store, 'full:v1', at);
      const prefix = resumeFiles(store).find((f) => f.file.endsWith('.prefix'))!;
      expect(prefix.size).toBeGreaterThan(1000);
      const bytes = fs.readFileSync(prefix.file);
      bytes[500] = bytes[500]! ^ 0x01;
      fs.writeFileSync(prefix.file, bytes);
      proxy.reset();
      const result = await runCli(['pull', `${proxy.host}/full:v1`], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain('resumable state discarded');
      expect(result.stdout).not.toContain('resumed:');
      expect(proxy.blobBytes()).toBe(clean.fetched);
      expect(diffSnapshots(clean.tree as never, (await proven(store, 'full:v1')) as never)).toEqual([]);
    },
    SLOW,
  );

  it(
    'says what it resumed',
    async () => {
      const store = newStore();
      await killedPull(store, 'full:v1', Math.floor(clean.size / 2));
      const result = await runCli(['pull', `${proxy.host}/full:v1`], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^resumed: \d+\.\d MB already verified$/m);
    },
    SLOW,
  );

  it(
    'starts over cleanly when the registry answers the resumed Range with the whole blob',
    async () => {
      const store = newStore();
      await killedPull(store, 'full:v1', Math.floor(clean.size / 2));
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      proxy.ignoreRanges();
      const report = await pullJson(store, 'full:v1');
      const fetched = proxy.blobBytes();
      proxy.reset();
      expect(report.bytesResumed).toBe(0);
      expect(fetched).toBe(clean.fetched);
      expect(diffSnapshots(clean.tree as never, (await proven(store, 'full:v1')) as never)).toEqual([]);
      expect(resumeFiles(store)).toEqual([]);
    },
    SLOW,
  );

  it(
    'keeps nothing of a blob whose bytes turn out not to match its digest',
    async () => {
      const store = newStore();
      const at = Math.floor(clean.size / 2);
      await killedPull(store, 'full:v1', at);
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      // The resumed run's bytes are wrong past the prefix: the blob fails its digest, and the
      // prefix (which may be what is wrong, for all skiff can tell) goes with it.
      proxy.flipAt(1000);
      const result = await runCli(['pull', `${proxy.host}/full:v1`], { SKIFF_STORE: store });
      proxy.reset();
      expect(result.code, result.stderr).toBe(4);
      expect(resumeFiles(store)).toEqual([]);
      // And the next run fetches it whole, correctly.
      const report = await pullJson(store, 'full:v1');
      expect(report.bytesResumed).toBe(0);
      expect(diffSnapshots(clean.tree as never, (await proven(store, 'full:v1')) as never)).toEqual([]);
    },
    SLOW,
  );
});

describe('a killed partial pull (zstd:chunked)', () => {
  let clean: { fetched: number; tree: Map<string, unknown>; report: ReportJson };

  /** A store holding v1: a partial pull of v2 then fetches the changed half. */
  async function storeWithV1(): Promise<string> {
    const store = newStore();
    await pullJson(store, 'chunked:v1');
    return store;
  }

  beforeAll(async () => {
    const store = await storeWithV1();
    proxy.reset();
    const report = await pullJson(store, 'chunked:v2');
    expect(report.layers[0]!.method).toBe('partial');
    clean = { fetched: proxy.blobBytes(), tree: await proven(store, 'chunked:v2'), report };
  }, SLOW);

  it(
    'resumes from the verified chunks: at most the missing bytes and the TOC/tar-split fetched again',
    async () => {
      const random = seeded(20);
      const planned = clean.report.layers[0]!.bytesFetched;
      for (let i = 0; i < ITERATIONS; i++) {
        const store = await storeWithV1();
        const at = Math.floor(clean.fetched * (0.2 + 0.7 * random()));
        const sent = await killedPull(store, 'chunked:v2', at);
        proxy.reset();
        const report = await pullJson(store, 'chunked:v2');
        const fetched = proxy.blobBytes();
        const layer = report.layers[0]!;
        console.log(
          `partial #${i}: layer ${layer.size}, sent before the kill ${sent}, resumed ${layer.bytesResumed}, fetched on resume ${fetched}, clean partial pull ${clean.fetched}`,
        );
        expect(layer.method).toBe('partial');
        expect(layer.bytesResumed).toBeGreaterThan(0);
        expect(layer.bytesResumed).toBeLessThanOrEqual(sent);
        // Missing bytes + TOC/tar-split (both in `planned`, the clean run's fetch) + 5%.
        expect(fetched).toBeLessThanOrEqual(planned - layer.bytesResumed + 0.05 * layer.size);
        expect(diffSnapshots(clean.tree as never, (await proven(store, 'chunked:v2')) as never)).toEqual([]);
        expect(resumeFiles(store)).toEqual([]);
      }
    },
    SLOW,
  );

  it(
    'drops pieces that no longer verify, and still pulls the exact image',
    async () => {
      const store = await storeWithV1();
      const at = Math.floor(clean.fetched * 0.8);
      await killedPull(store, 'chunked:v2', at);
      const pieces = resumeFiles(store).find((f) => f.file.endsWith('.pieces'))!;
      expect(pieces.size).toBeGreaterThan(FILE);
      const bytes = fs.readFileSync(pieces.file);
      // Inside the second piece's content: the first piece stays valid, the rest is dropped.
      const second = 44 + Number(bytes.readBigUInt64LE(4)) + 44 + 100;
      bytes[second] = bytes[second]! ^ 0x01;
      fs.writeFileSync(pieces.file, bytes);
      proxy.reset();
      const result = await runCli(['pull', '--json', `${proxy.host}/chunked:v2`], { SKIFF_STORE: store });
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as ReportJson;
      expect(report.warnings.join('\n')).toContain('do not verify');
      expect(report.layers[0]!.bytesResumed).toBeGreaterThan(0);
      expect(report.layers[0]!.bytesResumed).toBeLessThanOrEqual(FILE + 1024);
      expect(diffSnapshots(clean.tree as never, (await proven(store, 'chunked:v2')) as never)).toEqual([]);
    },
    SLOW,
  );
});

describe('gc and resumable state', () => {
  it(
    'keeps recent state, removes state older than --resume-max-age, and all of it with --all',
    async () => {
      const store = newStore();
      const size = (await pullJson(newStore(), 'full:v1')).layers[0]!.size;
      await killedPull(store, 'full:v1', Math.floor(size / 2));
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      expect((await runCli(['gc'], { SKIFF_STORE: store })).code).toBe(0);
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      const old = new Date(Date.now() - 2 * 3600 * 1000);
      for (const { file } of resumeFiles(store)) fs.utimesSync(file, old, old);
      expect((await runCli(['gc', '--resume-max-age', '3h'], { SKIFF_STORE: store })).code).toBe(0);
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      const gc = await runCli(['gc', '--resume-max-age', '1h', '--json'], { SKIFF_STORE: store });
      expect(gc.code, gc.stderr).toBe(0);
      expect(JSON.parse(gc.stdout).resumeRemoved).toBe(1);
      expect(resumeFiles(store)).toEqual([]);

      await killedPull(store, 'full:v1', Math.floor(size / 2));
      expect(resumeFiles(store).length).toBeGreaterThan(0);
      expect((await runCli(['gc', '--all'], { SKIFF_STORE: store })).code).toBe(0);
      expect(resumeFiles(store)).toEqual([]);
      expect((await runCli(['gc', '--resume-max-age', 'soon'], { SKIFF_STORE: store })).code).toBe(1);
    },
    SLOW,
  );
});
