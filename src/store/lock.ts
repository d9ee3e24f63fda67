/**
 * The store lock (docs/store.md, "The lock"): held by gc for its whole run and by a pull while it
 * registers its session, so a session never starts while gc decides what is garbage.
 *
 * `store.lock` is a small JSON file naming its holder (pid, host, pid namespace, the process's
 * start time, what it is doing). It appears whole: the holder writes it under a name of its own
 * and hard-links it to `store.lock`, which fails if a lock is there. A holder that is no longer
 * running (same host and pid namespace, and its pid is gone or now belongs to a process started
 * at another time) is taken over at once, and said so; takeovers are serialised by
 * `store.lock.takeover`, so one dead lock is removed by one process and a live lock taken in the
 * meantime is never removed. A live holder is waited for, as long as it runs, after saying once
 * whom we wait for.
 *
 * A `store.lock` directory is the lock of an older skiff (proper-lockfile, refreshed every 5 s):
 * it is taken over once it is 30 s old, the rule that skiff used.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { safeJson } from '../util/files.js';
import { StoreLayout } from './layout.js';

const LEGACY_STALE_MS = 30_000;
/** A takeover holds its mutex for microseconds; one this old was left by a killed process. */
const TAKEOVER_STALE_MS = 10_000;

const HolderSchema = z.object({
  pid: z.number().int(),
  host: z.string(),
  /** The holder's pid namespace (/proc/self/ns/pid): a pid means something only within it. */
  pidns: z.string().optional(),
  /** The process's start time (/proc/PID/stat field 22), so a reused pid is not taken for it. */
  started: z.string().optional(),
  purpose: z.string(),
  token: z.string(),
});
export type LockHolder = z.infer<typeof HolderSchema>;

type Observed =
  | { kind: 'absent' }
  | { kind: 'file'; holder: LockHolder | undefined; mtimeMs: number }
  | { kind: 'legacy'; mtimeMs: number };

export interface StoreLockOptions {
  /** What the holder is doing, for the message another process prints while it waits: "gc", "pull". */
  purpose: string;
  /** Where "waiting for …" and "taking over …" go; stderr, as one `skiff:` line each, by default. */
  notice?: (line: string) => void;
}

const stderrNotice = (line: string) => process.stderr.write(`skiff: ${line}\n`);

export async function withStoreLock<T>(
  root: string,
  options: StoreLockOptions,
  work: () => Promise<T>,
): Promise<T> {
  const release = await acquireStoreLock(root, options);
  try {
    return await work();
  } finally {
    await release();
  }
}

/** Takes the store lock, waiting for a live holder; resolves to the function that releases it. */
export async function acquireStoreLock(
  root: string,
  options: StoreLockOptions,
): Promise<() => Promise<void>> {
  const notice = options.notice ?? stderrNotice;
  const layout = new StoreLayout(root);
  const lockPath = layout.lockFile;
  const mine: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    ...optional('pidns', PID_NAMESPACE),
    ...optional('started', processStart(process.pid)),
    purpose: options.purpose,
    token: randomBytes(8).toString('hex'),
  };
  const candidate = layout.lockCandidate(mine.token);
  await fsp.writeFile(candidate, `${JSON.stringify(mine)}\n`, { mode: 0o444 });
  try {
    let waitedFor: number | undefined;
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      try {
        await fsp.link(candidate, lockPath);
        return () => releaseStoreLock(lockPath, mine.token);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const seen = await observe(lockPath);
      if (seen.kind === 'absent') continue;
      if (isStale(seen)) {
        await takeOver(layout, seen, notice);
        continue;
      }
      const pid = seen.kind === 'file' ? seen.holder?.pid : undefined;
      if (pid !== undefined && pid !== waitedFor) {
        const what = seen.kind === 'file' && seen.holder ? ` (${seen.holder.purpose})` : '';
        notice(`waiting for the store lock held by process ${pid}${what}`);
        waitedFor = pid;
      }
      await sleep(delay);
    }
  } finally {
    await fsp.rm(candidate, { force: true });
  }
}

/** Removes the lock if it is still ours (it is, unless another process wrongly took it over). */
async function releaseStoreLock(lockPath: string, token: string): Promise<void> {
  const seen = await observe(lockPath);
  if (seen.kind === 'file' && seen.holder?.token === token) await fsp.rm(lockPath, { force: true });
}

async function observe(lockPath: string): Promise<Observed> {
  let stat: fs.Stats;
  try {
    stat = await fsp.lstat(lockPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw error;
  }
  if (stat.isDirectory()) return { kind: 'legacy', mtimeMs: stat.mtimeMs };
  let text: string;
  try {
    text = await fsp.readFile(lockPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw error;
  }
  const parsed = HolderSchema.safeParse(safeJson(text));
  return { kind: 'file', holder: parsed.success ? parsed.data : undefined, mtimeMs: stat.mtimeMs };
}

/**
 * A holder is gone when it ran on this host, in this pid namespace, and its pid is free or now
 * names a process started at another time. Any other holder (another host or container sharing the
 * store) is never judged: it is waited for.
 */
function isStale(seen: Exclude<Observed, { kind: 'absent' }>): boolean {
  if (seen.kind === 'legacy') return Date.now() - seen.mtimeMs > LEGACY_STALE_MS;
  const holder = seen.holder;
  // Unreadable: not written by skiff (a lock always appears whole). Judged by age, like a legacy one.
  if (!holder) return Date.now() - seen.mtimeMs > LEGACY_STALE_MS;
  // Containers may share a hostname and a store but not their pids.
  if (holder.host !== os.hostname() || holder.pidns !== PID_NAMESPACE) return false;
  if (!isRunning(holder.pid)) return true;
  const started = processStart(holder.pid);
  return holder.started !== undefined && started !== undefined && started !== holder.started;
}

/**
 * Removes a dead holder's lock. Only one process at a time does this (the takeover mutex), and it
 * removes the lock only if it still is the dead holder's: a live process that took the lock in the
 * meantime keeps it.
 */
async function takeOver(
  layout: StoreLayout,
  dead: Exclude<Observed, { kind: 'absent' }>,
  notice: (line: string) => void,
): Promise<void> {
  const lockPath = layout.lockFile;
  const mutex = layout.lockTakeover;
  try {
    await fsp.mkdir(mutex);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const stat = await fsp.stat(mutex).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > TAKEOVER_STALE_MS)
      await fsp.rm(mutex, { recursive: true, force: true });
    else await sleep(10);
    return;
  }
  try {
    const now = await observe(lockPath);
    if (!sameLock(now, dead)) return;
    const who = dead.kind === 'file' && dead.holder ? `process ${dead.holder.pid}` : 'an older skiff';
    notice(`taking over the store lock of ${who}, which is no longer running`);
    await fsp.rm(lockPath, { recursive: true, force: true });
  } finally {
    await fsp.rm(mutex, { recursive: true, force: true });
  }
}

function sameLock(now: Observed, dead: Exclude<Observed, { kind: 'absent' }>): boolean {
  if (now.kind !== dead.kind) return false;
  if (now.kind === 'file' && dead.kind === 'file') {
    return now.holder ? now.holder.token === dead.holder?.token : now.mtimeMs === dead.mtimeMs;
  }
  return now.kind === 'legacy' && now.mtimeMs === dead.mtimeMs;
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
export function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const PID_NAMESPACE = readPidNamespace();

function readPidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot (Linux /proc); undefined where unknown. */
function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
