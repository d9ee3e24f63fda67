// The resume area's own rules (src/store/resume.ts): a record never claims bytes not written, a
// dead pull's state is taken over once, a live pull's never, and damaged data is found by hashing.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { ResumeArea, StoreLayout } from '../../src/store/index.js';
import { tempDir } from '../harness/cli.js';

const BLOB = `sha256:${'ab'.repeat(32)}` as Digest;
/** Pids no process has (above the kernel's pid_max limit): their pulls are dead. */
const DEAD = '4194999-0123456789ab';
const LIVE = `${process.pid}-0123456789ab`;

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
const bytes = (n: number, seed: number) => Buffer.alloc(n, seed);

let work: { dir: string; cleanup: () => void };
let area: ResumeArea;
beforeEach(() => {
  work = tempDir('skiff-resume-unit-');
  area = new ResumeArea(new StoreLayout(work.dir));
});
afterEach(() => work.cleanup());

describe('a full pull prefix', () => {
  it('is continued from its last record, not from bytes written after it', async () => {
    const { prefix } = await area.forSession(DEAD).openPrefix(BLOB);
    const data = bytes(400 * 1024, 7);
    await prefix.append(data.subarray(0, 300 * 1024));
    await prefix.append(data.subarray(300 * 1024));
    expect(fs.statSync(prefix.dataPath).size).toBe(400 * 1024);
    // Killed here: no close(). The record was rewritten once 256 KiB had arrived since the last one.
    const next = await area.forSession('4194998-aaaaaaaaaaaa').openPrefix(BLOB);
    expect(next.discarded).toBeUndefined();
    expect(next.prefix.size).toBe(300 * 1024);
    expect(fs.statSync(next.prefix.dataPath).size).toBe(300 * 1024);
  });

  it('is discarded when a byte of it changed', async () => {
    const { prefix } = await area.forSession(DEAD).openPrefix(BLOB);
    await prefix.append(bytes(100_000, 1));
    await prefix.close();
    const file = prefix.dataPath;
    const data = fs.readFileSync(file);
    data[5] = 2;
    fs.writeFileSync(file, data);
    const next = await area.forSession('4194998-aaaaaaaaaaaa').openPrefix(BLOB);
    expect(next.discarded).toMatch(/does not match/);
    expect(next.prefix.size).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
  });

  it("is never taken from a live pull, and a dead pull's is taken once", async () => {
    const live = await area.forSession(LIVE).openPrefix(BLOB);
    await live.prefix.append(bytes(1000, 3));
    await live.prefix.close();
    expect((await area.forSession('4194998-aaaaaaaaaaaa').openPrefix(BLOB)).prefix.size).toBe(0);

    const dead = await area.forSession(DEAD).openPrefix(`sha256:${'cd'.repeat(32)}`);
    await dead.prefix.append(bytes(1000, 4));
    await dead.prefix.close();
    // Taken by a running pull: renamed to its name, so the next one finds nothing to take.
    const first = await area
      .forSession(`${process.pid}-ffffffffffff`)
      .openPrefix(`sha256:${'cd'.repeat(32)}`);
    const second = await area.forSession('4194997-bbbbbbbbbbbb').openPrefix(`sha256:${'cd'.repeat(32)}`);
    expect([first.prefix.size, second.prefix.size]).toEqual([1000, 0]);
  });
});

describe('a partial pull pieces log', () => {
  it('serves verified pieces and stops at the first one that does not verify', async () => {
    const { pieces } = await area.forSession(DEAD).openPieces(BLOB);
    const contents = [bytes(1000, 1), bytes(2000, 2), bytes(3000, 3)];
    for (const c of contents) pieces.append(sha(c), c);
    await pieces.close();
    const again = await area.forSession('4194998-aaaaaaaaaaaa').openPieces(BLOB);
    expect(again.discarded).toBeUndefined();
    for (const c of contents) expect(again.pieces.find(sha(c), c.length)).toBeDefined();
    await again.pieces.close();

    // A flipped byte inside the second piece: the first still serves, the rest is dropped.
    const data = fs.readFileSync(again.pieces.dataPath);
    data[44 + 1000 + 44 + 10] = 9;
    fs.writeFileSync(again.pieces.dataPath, data);
    const damaged = await area.forSession('4194997-bbbbbbbbbbbb').openPieces(BLOB);
    expect(damaged.discarded).toMatch(/do not verify/);
    expect(damaged.pieces.find(sha(contents[0]!), 1000)).toBeDefined();
    expect(damaged.pieces.find(sha(contents[1]!), 2000)).toBeUndefined();
    expect(damaged.pieces.find(sha(contents[2]!), 3000)).toBeUndefined();
    // Appends go after the last good piece, so the log is whole again.
    damaged.pieces.append(sha(contents[2]!), contents[2]!);
    await damaged.pieces.close();
    const repaired = await area.forSession('4194996-cccccccccccc').openPieces(BLOB);
    expect(repaired.discarded).toBeUndefined();
    expect(repaired.pieces.find(sha(contents[2]!), 3000)).toBeDefined();
  });
});

describe('removeStale', () => {
  it("removes dead pulls' state older than the cutoff, never a live pull's", async () => {
    const dead = await area.forSession(DEAD).openPrefix(BLOB);
    await dead.prefix.append(bytes(1000, 1));
    await dead.prefix.close();
    const other = `sha256:${'ef'.repeat(32)}` as Digest;
    const live = await area.forSession(LIVE).openPrefix(other);
    await live.prefix.append(bytes(1000, 1));
    await live.prefix.close();
    expect((await area.removeStale(Date.now() - 3_600_000)).blobs).toBe(0);
    expect((await area.removeStale(Date.now())).blobs).toBe(1);
    expect(fs.existsSync(area.blobDir(BLOB))).toBe(false);
    expect(fs.existsSync(area.blobDir(other))).toBe(true);
  });
});
