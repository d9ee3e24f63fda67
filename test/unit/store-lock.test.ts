// The store lock (src/store/lock.ts): mutual exclusion among waiters, a dead holder taken over
// once however many processes find it, a reused pid not mistaken for its holder, an older skiff's
// directory lock taken over once stale.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { withStoreLock } from '../../src/store/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-lock-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshStore = () => fs.mkdtempSync(path.join(root, `s${dirs++}-`));

/** Runs `n` lock holders at once; returns the most that ever held it together, and the notices. */
async function contend(store: string, n: number) {
  let active = 0;
  let most = 0;
  const notices: string[] = [];
  await Promise.all(
    Array.from({ length: n }, () =>
      withStoreLock(store, { purpose: 'test', notice: (l) => notices.push(l) }, async () => {
        most = Math.max(most, ++active);
        await sleep(5);
        active--;
      }),
    ),
  );
  return { most, notices };
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);
}

describe('store lock', () => {
  it('is held by one at a time; the others wait, saying for whom, and nothing is left behind', async () => {
    const store = freshStore();
    const { most, notices } = await contend(store, 6);
    expect(most).toBe(1);
    expect(notices.length).toBeGreaterThan(0);
    for (const n of notices)
      expect(n).toBe(`waiting for the store lock held by process ${process.pid} (test)`);
    expect(fs.readdirSync(store)).toEqual([]);
  });

  it('takes over a dead holder once, however many find it', async () => {
    const store = freshStore();
    const pid = deadPid();
    const lock = {
      pid,
      host: os.hostname(),
      pidns: fs.readlinkSync('/proc/self/ns/pid'),
      purpose: 'gc',
      token: 'dead',
    };
    fs.writeFileSync(path.join(store, 'store.lock'), JSON.stringify(lock));
    const { most, notices } = await contend(store, 6);
    expect(most).toBe(1);
    const takeovers = notices.filter((n) => n.startsWith('taking over'));
    expect(takeovers).toEqual([`taking over the store lock of process ${pid}, which is no longer running`]);
    expect(notices.some((n) => n.includes(`process ${pid} (gc)`))).toBe(false);
    expect(fs.readdirSync(store)).toEqual([]);
  });

  it('knows a reused pid: a live process started at another time is not the holder', async () => {
    const store = freshStore();
    const lock = {
      pid: process.pid,
      host: os.hostname(),
      pidns: fs.readlinkSync('/proc/self/ns/pid'),
      started: '1',
      purpose: 'gc',
      token: 'old',
    };
    fs.writeFileSync(path.join(store, 'store.lock'), JSON.stringify(lock));
    const { notices } = await contend(store, 1);
    expect(notices).toEqual([
      `taking over the store lock of process ${process.pid}, which is no longer running`,
    ]);
  });

  it('never judges a holder in another pid namespace (a container sharing the store): it waits', async () => {
    const store = freshStore();
    const lockFile = path.join(store, 'store.lock');
    const lock = { pid: deadPid(), host: os.hostname(), pidns: 'pid:[1]', purpose: 'gc', token: 'other' };
    fs.writeFileSync(lockFile, JSON.stringify(lock));
    const notices: string[] = [];
    let held = false;
    const waiting = withStoreLock(store, { purpose: 'test', notice: (l) => notices.push(l) }, async () => {
      held = true;
    });
    while (notices.length === 0) await sleep(5);
    expect(notices).toEqual([`waiting for the store lock held by process ${lock.pid} (gc)`]);
    expect(held).toBe(false);
    fs.rmSync(lockFile); // the other container's gc ends
    await waiting;
    expect(held).toBe(true);
  });

  it("takes over an older skiff's directory lock once it is stale (30 s, its own rule)", async () => {
    const store = freshStore();
    const legacy = path.join(store, 'store.lock');
    fs.mkdirSync(legacy);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(legacy, old, old);
    const { most, notices } = await contend(store, 2);
    expect(most).toBe(1);
    expect(notices.filter((n) => n.startsWith('taking over'))).toEqual([
      'taking over the store lock of an older skiff, which is no longer running',
    ]);
  });
});
