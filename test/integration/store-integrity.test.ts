// Issue 10, the store: gc racing a pull (defect 2), `skiff fsck`, a killed gc's leftovers and a dead
// process's lock (defect 6), unnamed images left by a pull killed before its name (defect 7).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');
const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');
const REF = `oci:${path.join(FIXTURES, 'demo-v1')}:latest`;
const work = tempDir('skiff-store-integrity-');
afterAll(() => work.cleanup());

let stores = 0;
/** A fresh store holding demo-v1 (one zstd:chunked layer: a pack and a loose object). */
async function pulledStore(): Promise<string> {
  const store = path.join(work.dir, `store-${stores++}`);
  const pulled = await runCli(['pull', REF], { SKIFF_STORE: store });
  expect(pulled.code, pulled.stderr).toBe(0);
  return store;
}

const only = (dir: string) => {
  const entries = fs.readdirSync(dir).filter((e) => !e.includes('.tmp-'));
  expect(entries).toHaveLength(1);
  return path.join(dir, entries[0]!);
};
const layerDir = (store: string) => only(path.join(store, 'layers/sha256'));
const imageDir = (store: string) => only(path.join(store, 'images/sha256'));
const looseObject = (store: string) => {
  const root = path.join(store, 'objects/sha256');
  const files = fs
    .readdirSync(root)
    .flatMap((s) => fs.readdirSync(path.join(root, s)).map((f) => path.join(root, s, f)));
  expect(files).toHaveLength(1);
  return files[0]!;
};

async function fsck(store: string) {
  const result = await runCli(['fsck'], { SKIFF_STORE: store });
  return { ...result, lines: result.stdout.trim().split('\n') };
}

async function expectConsistent(store: string): Promise<void> {
  const checked = await fsck(store);
  expect(checked.code, checked.stdout + checked.stderr).toBe(0);
  const target = path.join(work.dir, `unpack-${stores++}`);
  const unpacked = await runCli(['unpack', REF, target], { SKIFF_STORE: store });
  expect(unpacked.code, unpacked.stderr).toBe(0);
}

/** The pid of a process that has exited (and so no longer runs). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

function writeDeadLock(store: string): number {
  const pid = deadPid();
  const holder = {
    pid,
    host: os.hostname(),
    pidns: fs.readlinkSync('/proc/self/ns/pid'),
    purpose: 'gc',
    token: 'killed',
  };
  fs.writeFileSync(path.join(store, 'store.lock'), `${JSON.stringify(holder)}\n`);
  return pid;
}

/** A CLI run we can watch while it runs. */
function startCli(args: string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const l of listeners) l();
  };
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    changed();
  });
  let done = false;
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      done = true;
      resolve({ code, stdout, stderr });
      changed();
    }),
  );
  /** Resolves once stderr holds `text` or the process has ended, whichever comes first. */
  const stderrOrExit = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (done || stderr.includes(text)) {
          listeners.delete(check);
          resolve();
        }
      };
      listeners.add(check);
      check();
    });
  return { exited, stderrOrExit };
}

async function fileAppears(file: string): Promise<void> {
  while (!fs.existsSync(file)) await new Promise((r) => setTimeout(r, 20));
}

describe('gc and a pull started while it runs (defect 2)', () => {
  it('the pull waits for gc, then fetches what gc removed: the store stays consistent', async () => {
    const store = await pulledStore();
    const env = { SKIFF_STORE: store };
    expect((await runCli(['rmi', REF], env)).code).toBe(0);
    // gc decides that demo-v1's layer and objects are garbage, then stops before deleting them.
    const pause = fs.mkdtempSync(path.join(work.dir, 'pause-'));
    const gc = startCli(['gc', '--json'], { ...env, SKIFF_TEST_GC_PAUSE: pause });
    await fileAppears(path.join(pause, 'paused'));

    // A pull of the same image now: on the old code it reused the layer gc was about to delete.
    const pull = startCli(['pull', REF, '--json'], env);
    await pull.stderrOrExit('waiting for the store lock');
    fs.writeFileSync(path.join(pause, 'resume'), '');

    const [gcDone, pullDone] = await Promise.all([gc.exited, pull.exited]);
    expect(gcDone.code, gcDone.stderr).toBe(0);
    expect(JSON.parse(gcDone.stdout)).toMatchObject({ layersRemoved: 1 });
    expect(pullDone.code, pullDone.stderr).toBe(0);
    await expectConsistent(store);
    expect(pullDone.stderr).toMatch(/^skiff: waiting for the store lock held by process \d+ \(gc\)$/m);
    expect(JSON.parse(pullDone.stdout).layers.map((l: { method: string }) => l.method)).not.toContain(
      'reuse',
    );
  });
});

describe('a pull never reuses a layer missing parts', () => {
  it.each([
    ['its tar-split', (store: string) => path.join(layerDir(store), 'tarsplit.jsonl.zst')],
    ['an object', looseObject],
    [
      'an object, in a layer committed before objects.idx existed',
      (store: string) => {
        fs.rmSync(path.join(layerDir(store), 'objects.idx'));
        return looseObject(store);
      },
    ],
  ])('missing %s: the layer is pulled again and the store repaired', async (_what, victim) => {
    const store = await pulledStore();
    fs.rmSync(victim(store));
    const again = await runCli(['pull', REF, '--json'], { SKIFF_STORE: store });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).layers[0].method).not.toBe('reuse');
    await expectConsistent(store);
  });
});

describe('skiff fsck', () => {
  it('passes a store after a pull, with a summary', async () => {
    const store = await pulledStore();
    const checked = await fsck(store);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout).toMatch(
      /^checked 1 name\(s\), 1 image\(s\), 1 layer\(s\), \d+ object\(s\) .*no damage$/m,
    );
    const json = JSON.parse((await runCli(['fsck', '--json'], { SKIFF_STORE: store })).stdout);
    expect(json).toMatchObject({ clean: true, images: 1, layers: 1, damage: [] });
    expect(json.objects).toBeGreaterThan(100);
  });

  it('refuses to create a store where there is none (exit 1)', async () => {
    const missing = path.join(work.dir, 'no-such-store');
    const result = await runCli(['fsck'], { SKIFF_STORE: missing });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`skiff: no store at ${missing}\n`);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('names a deleted pack, and the layer that cannot rebuild without it (exit 4)', async () => {
    const store = await pulledStore();
    const pack = fs.readdirSync(path.join(store, 'packs')).find((f) => f.endsWith('.pack'))!;
    fs.rmSync(path.join(store, 'packs', pack));
    const checked = await fsck(store);
    expect(checked.code).toBe(4);
    expect(checked.lines).toContain(`pack packs/${pack}: is missing (its index names 151 objects)`);
    expect(checked.stdout).toContain(`layer sha256:${path.basename(layerDir(store))}: does not rebuild`);
    expect(checked.stderr).toMatch(/^skiff: store .* is damaged: 2 problem\(s\)$/m);
  });

  it('names a corrupt object, packed or loose, and the layer whose DiffID no longer matches', async () => {
    const store = await pulledStore();
    const loose = looseObject(store);
    flipByte(loose, 10);
    const packFile = path.join(
      store,
      'packs',
      fs.readdirSync(path.join(store, 'packs')).find((f) => f.endsWith('.pack'))!,
    );
    flipByte(packFile, 0);
    const checked = await fsck(store);
    expect(checked.code).toBe(4);
    const diffID = `sha256:${path.basename(layerDir(store))}`;
    expect(checked.stdout).toMatch(
      new RegExp(`^layer ${diffID}: rebuilds to sha256:[a-f0-9]{64} .*not its DiffID$`, 'm'),
    );
    expect(checked.stdout).toMatch(
      new RegExp(`^object sha256:${path.basename(loose)}: hashes to sha256:`, 'm'),
    );
    expect(checked.stdout).toMatch(/^object sha256:[a-f0-9]{64}: in packs\/.*\.pack hashes to sha256:/m);
  });

  it('names a layer whose tar-split is gone, and an image whose config is gone', async () => {
    const store = await pulledStore();
    const layer = layerDir(store);
    const image = imageDir(store);
    fs.rmSync(path.join(layer, 'tarsplit.jsonl.zst'));
    fs.rmSync(path.join(image, 'config.json'));
    const checked = await fsck(store);
    expect(checked.code).toBe(4);
    expect(checked.lines).toContain(`layer sha256:${path.basename(layer)}: tarsplit.jsonl.zst is missing`);
    expect(checked.lines).toContain(`image sha256:${path.basename(image)}: config.json is missing`);
    const json = JSON.parse((await runCli(['fsck', '--json'], { SKIFF_STORE: store })).stdout);
    expect(json.clean).toBe(false);
    expect(json.damage.map((d: { kind: string }) => d.kind).sort()).toEqual(['image', 'layer']);
  });
});

function flipByte(file: string, at: number): void {
  fs.chmodSync(file, 0o644);
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, at);
  byte[0]! ^= 0xff;
  fs.writeSync(fd, byte, 0, 1, at);
  fs.closeSync(fd);
}

describe('a killed gc (defect 6)', () => {
  /** What the old gc left when killed between unlinking layer.json and the tar-split. */
  async function killedGcStore(): Promise<{ store: string; pid: number }> {
    const store = await pulledStore();
    expect((await runCli(['rmi', REF], { SKIFF_STORE: store })).code).toBe(0);
    fs.rmSync(path.join(layerDir(store), 'layer.json'));
    return { store, pid: writeDeadLock(store) };
  }

  it('leaves nothing that stops the next pull, which takes over the dead lock at once', async () => {
    const { store, pid } = await killedGcStore();
    const pulled = await runCli(['pull', REF], { SKIFF_STORE: store });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).toContain(
      `skiff: taking over the store lock of process ${pid}, which is no longer running\n`,
    );
    expect(pulled.stderr).not.toContain('waiting for');
    await expectConsistent(store);
  });

  it('and the next gc does not wait on the dead lock either', async () => {
    const { store, pid } = await killedGcStore();
    const swept = await runCli(['gc', '--json'], { SKIFF_STORE: store });
    expect(swept.code, swept.stderr).toBe(0);
    expect(swept.stderr).toBe(
      `skiff: taking over the store lock of process ${pid}, which is no longer running\n`,
    );
    expect(JSON.parse(swept.stdout)).toMatchObject({ layersRemoved: 1 });
    expect(fs.readdirSync(path.join(store, 'layers/sha256'))).toEqual([]);
    expect(fs.existsSync(path.join(store, 'store.lock'))).toBe(false);
  });
});

describe('an image no name refers to (defect 7)', () => {
  it('is removed by gc, with the layers only it used', async () => {
    const store = await pulledStore();
    // A pull killed after committing its image and before writing its name leaves exactly this.
    for (const name of fs.readdirSync(path.join(store, 'names'))) fs.rmSync(path.join(store, 'names', name));
    const swept = await runCli(['gc', '--json'], { SKIFF_STORE: store });
    expect(swept.code, swept.stderr).toBe(0);
    expect(JSON.parse(swept.stdout)).toMatchObject({ imagesRemoved: 1, layersRemoved: 1 });
    expect(JSON.parse((await runCli(['images', '--json'], { SKIFF_STORE: store })).stdout)).toEqual([]);
    expect((await fsck(store)).code).toBe(0);
  });

  it('is kept while a pull is in progress: gc refuses to run at all', async () => {
    const store = await pulledStore();
    for (const name of fs.readdirSync(path.join(store, 'names'))) fs.rmSync(path.join(store, 'names', name));
    // A live process's session: this test's own (the pull that would name the image).
    const session = path.join(store, 'sessions', `${process.pid}-live.json`);
    fs.writeFileSync(session, JSON.stringify({ pid: process.pid }));
    const refused = await runCli(['gc'], { SKIFF_STORE: store });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^skiff: store .* is in use by 1 pull\(s\) in progress; run gc when they finish$/m,
    );
    expect(fs.readdirSync(path.join(store, 'images/sha256'))).toHaveLength(1);
    fs.rmSync(session);
  });
});
