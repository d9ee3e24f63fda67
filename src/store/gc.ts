/**
 * `skiff gc`: removes what no name reaches (images, layers, objects, blob records) and what
 * interrupted pulls left behind. Mark, then sweep, with pulls kept out: gc holds the store lock
 * from its check for live sessions to its last deletion, and a pull registers its session under
 * the same lock (Store.beginSession), so no pull can start choosing what to reuse while gc decides
 * what is garbage or deletes it (docs/store.md, "The lock").
 *
 * Everything goes in the reverse of the commit order (unnamed images → blob records → layers →
 * objects), and a directory goes by one rename into tmp/ before it is emptied, so a gc killed at
 * any moment leaves a store whose every record still has all its parts, plus garbage for the next
 * gc. A new kind of garbage (say, stale resume state) is one more sweep in `collectGarbage`.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../digest/index.js';
import { NotFoundError, StoreBusyError } from '../errors/index.js';
import { StoreLayout } from './layout.js';
import { isRunning, withStoreLock } from './lock.js';
import { type PackEntry, PackWriter } from './packs.js';
import type { Store } from './store.js';
import { readTarSplit } from './tarsplit.js';

export interface GcResult {
  imagesRemoved: number;
  layersRemoved: number;
  objectsRemoved: number;
  packsRewritten: number;
  blobRecordsRemoved: number;
  stagingRemoved: number;
  /** Blobs whose resumable state (resume/) was removed. */
  resumeRemoved: number;
  bytesFreed: number;
}

/**
 * Test-only, documented in docs/store.md: with SKIFF_TEST_GC_PAUSE=DIR, gc creates DIR/paused once
 * it has decided what is garbage (holding the lock) and waits for DIR/resume before deleting it,
 * so a test can start a pull exactly then.
 */
const PAUSE_ENV = 'SKIFF_TEST_GC_PAUSE';

export interface GcOptions {
  /** Resumable state last written longer ago than this goes (Infinity keeps it; 0 removes all). */
  resumeMaxAgeMs?: number;
}

/** How long what an interrupted pull fetched is kept for the next pull, unless gc is told otherwise. */
export const DEFAULT_RESUME_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export async function collectGarbage(store: Store, options: GcOptions = {}): Promise<GcResult> {
  return withStoreLock(store.root, { purpose: 'gc' }, async () => {
    const live = await liveSessions(store);
    if (live.length > 0) {
      throw new StoreBusyError(
        `store ${store.root} is in use by ${live.length} pull(s) in progress; run gc when they finish`,
      );
    }
    const result: GcResult = {
      imagesRemoved: 0,
      layersRemoved: 0,
      objectsRemoved: 0,
      packsRewritten: 0,
      blobRecordsRemoved: 0,
      stagingRemoved: 0,
      resumeRemoved: 0,
      bytesFreed: 0,
    };
    const marks = await mark(store);
    await pauseForTests();
    result.stagingRemoved = await removeStaging(store, result);
    await removeStaleResume(store, options.resumeMaxAgeMs ?? DEFAULT_RESUME_MAX_AGE_MS, result);
    await sweepImages(store, marks.deadImages, result);
    await sweepBlobRecords(store, marks.liveLayers, result);
    await sweepLayers(store, marks.deadLayers, result);
    await sweepLoose(store.layout, marks.liveObjects, result);
    await sweepPacks(store, marks.liveObjects, result);
    return result;
  });
}

interface Marks {
  /** Images no name refers to (a pull killed between its image and its name leaves one). */
  deadImages: Digest[];
  liveLayers: Set<Digest>;
  /** Layer directories no live image uses, incomplete ones included. */
  deadLayers: Digest[];
  /** The hex digests of every object a live layer's entries name. */
  liveObjects: Set<string>;
}

/** Names are the roots: what they reach lives, everything else is garbage. */
async function mark(store: Store): Promise<Marks> {
  const named = new Set((await store.listNames()).map((n) => n.configDigest));
  const deadImages: Digest[] = [];
  const liveLayers = new Set<Digest>();
  for (const image of await store.listImages()) {
    if (!named.has(image)) {
      deadImages.push(image);
      continue;
    }
    // An image removed meanwhile (rmi takes no lock) uses nothing; a corrupt record stops gc,
    // which cannot know what that image needs.
    const record = await store.readImage(image).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    for (const d of record?.diffIDs ?? []) liveLayers.add(d);
  }
  const deadLayers: Digest[] = [];
  const liveObjects = new Set<string>();
  for (const hex of await fsp.readdir(store.layout.layersDir)) {
    const diffID = `sha256:${hex}` as Digest;
    if (!liveLayers.has(diffID)) {
      deadLayers.push(diffID);
      continue;
    }
    const tarSplit = store.layerTarSplitPath(diffID);
    // A live layer without its tar-split is damage (fsck says so); its objects cannot be known.
    if (!fs.existsSync(tarSplit)) continue;
    for await (const record of readTarSplit(tarSplit)) {
      if ('e' in record && record.e.digest) liveObjects.add(record.e.digest.slice(7));
    }
  }
  return { deadImages, liveLayers, deadLayers, liveObjects };
}

async function pauseForTests(): Promise<void> {
  const dir = process.env[PAUSE_ENV];
  if (!dir) return;
  await fsp.writeFile(path.join(dir, 'paused'), `${process.pid}\n`);
  while (!fs.existsSync(path.join(dir, 'resume'))) await new Promise((r) => setTimeout(r, 20));
}

async function sweepImages(store: Store, dead: Digest[], result: GcResult): Promise<void> {
  for (const image of dead) {
    result.bytesFreed += await removeDir(store, store.imageDir(image));
    result.imagesRemoved++;
  }
}

async function sweepLayers(store: Store, dead: Digest[], result: GcResult): Promise<void> {
  for (const diffID of dead) {
    result.bytesFreed += await removeDir(store, store.layerDir(diffID));
    result.layersRemoved++;
  }
}

/** Sessions whose process is still alive; dead ones (crashed, killed) are cleared as a side effect. */
export async function liveSessions(store: Store): Promise<string[]> {
  const dir = store.layout.sessionsDir;
  const live: string[] = [];
  for (const file of await fsp.readdir(dir)) {
    const pid = Number(file.split('-')[0]);
    if (isRunning(pid)) live.push(file);
    else await fsp.rm(path.join(dir, file), { force: true });
  }
  return live;
}

async function removeStaging(store: Store, result: GcResult): Promise<number> {
  const { layout } = store;
  const dir = layout.tmpDir;
  let removed = 0;
  for (const name of await fsp.readdir(dir)) {
    result.bytesFreed += await removeTree(path.join(dir, name));
    removed++;
  }
  // Half-written small files from atomic writes (temp name beside the target) go too.
  for (const sub of [layout.namesDir, layout.blobsDir]) {
    for (const name of await fsp.readdir(sub)) {
      if (name.includes('.tmp-')) await fsp.rm(path.join(sub, name), { force: true });
    }
  }
  // And the lock files a killed process wrote before linking one into place (store.lock.TOKEN).
  for (const name of await fsp.readdir(layout.root)) {
    if (!StoreLayout.isLockCandidate(name)) continue;
    const file = path.join(layout.root, name);
    const pid = Number(/"pid":(\d+)/.exec(await fsp.readFile(file, 'utf8').catch(() => ''))?.[1]);
    if (!isRunning(pid)) await fsp.rm(file, { force: true });
  }
  return removed;
}

/** Resumable state of dead pulls older than `maxAgeMs` (resume.ts); it is never referenced. */
async function removeStaleResume(store: Store, maxAgeMs: number, result: GcResult): Promise<void> {
  const removed = await store.resume.removeStale(Date.now() - maxAgeMs);
  result.resumeRemoved += removed.blobs;
  result.bytesFreed += removed.bytes;
}

async function sweepLoose(layout: StoreLayout, live: Set<string>, result: GcResult): Promise<void> {
  for (const shard of await fsp.readdir(layout.objectsDir)) {
    const dir = layout.objectShard(shard);
    for (const name of await fsp.readdir(dir)) {
      if (!name.includes('.tmp-') && live.has(name)) continue;
      const file = path.join(dir, name);
      const stat = await fsp.lstat(file).catch(() => undefined);
      await fsp.rm(file, { force: true });
      result.bytesFreed += stat?.size ?? 0;
      result.objectsRemoved++;
    }
  }
}

/**
 * Packs keep only live content, each digest in one pack (the first in name order: the rule
 * lookups use). A pack with nothing dead stays as it is; one with nothing live goes; the rest are
 * rewritten. The new pack is in place before the old one is removed, so a crash leaves, at worst,
 * a duplicate for the next gc.
 */
async function sweepPacks(store: Store, live: Set<string>, result: GcResult): Promise<void> {
  const { layout } = store;
  const kept = new Set<string>();
  for (const index of store.packs.indexes()) {
    const entries = [...index.entries()];
    const keep = entries.filter((e) => live.has(e.digest.slice(7)) && !kept.has(e.digest));
    for (const e of keep) kept.add(e.digest);
    if (keep.length === entries.length) continue;
    const name = path.basename(index.packPath, '.pack');
    if (keep.length > 0) await rewritePack(store, index.packPath, keep);
    const keeping = new Set(keep);
    const dropped = entries.filter((e) => !keeping.has(e));
    result.objectsRemoved += dropped.length;
    result.bytesFreed += dropped.reduce((sum, e) => sum + e.size, 0);
    // The index first: without it the pack is invisible, and then harmless to remove.
    await fsp.rm(layout.packIndexFile(name), { force: true });
    await fsp.rm(layout.packFile(name), { force: true });
    result.packsRewritten++;
  }
  // A pack whose index never arrived (a crash between the two renames) is garbage.
  for (const file of await fsp.readdir(layout.packsDir)) {
    const name = file.slice(0, -'.pack'.length);
    if (file.endsWith('.pack') && !fs.existsSync(layout.packIndexFile(name)))
      await fsp.rm(layout.packFile(name), { force: true });
  }
  store.packs.reset();
}

async function rewritePack(store: Store, packPath: string, keep: PackEntry[]): Promise<void> {
  const name = `${Date.now().toString(36).padStart(9, '0')}-gc-${process.pid}`;
  const writer = new PackWriter(path.join(store.layout.tmpDir, `${name}.pack`));
  const source = await fsp.open(packPath, 'r');
  try {
    for (const entry of keep) {
      const buffer = Buffer.allocUnsafe(entry.size);
      await source.read(buffer, 0, entry.size, entry.offset);
      await writer.add(entry.digest, buffer);
    }
  } finally {
    await source.close();
  }
  const finished = await writer.finish();
  if (!finished) return;
  await fsp.rename(finished.pack, store.layout.packFile(name));
  await fsp.rename(finished.index, store.layout.packIndexFile(name));
}

async function sweepBlobRecords(store: Store, liveLayers: Set<Digest>, result: GcResult): Promise<void> {
  const dir = store.layout.blobsDir;
  for (const name of await fsp.readdir(dir)) {
    const blob = StoreLayout.blobOfRecord(name);
    const diffID = blob && (await store.blobDiffID(blob))?.diffID;
    if (!diffID || !liveLayers.has(diffID)) {
      await fsp.rm(path.join(dir, name), { force: true });
      result.blobRecordsRemoved++;
    }
  }
}

/** Moves a directory out of the store by one rename, then empties it; returns the bytes freed. */
async function removeDir(store: Store, dir: string): Promise<number> {
  const trash = await store.moveToTrash(dir);
  return trash ? removeTree(trash) : 0;
}

async function removeTree(target: string): Promise<number> {
  let bytes = 0;
  const walk = async (p: string): Promise<void> => {
    const stat = await fsp.lstat(p).catch(() => undefined);
    if (!stat) return;
    if (stat.isDirectory()) for (const child of await fsp.readdir(p)) await walk(path.join(p, child));
    else bytes += stat.size;
  };
  await walk(target);
  await fsp.rm(target, { recursive: true, force: true });
  return bytes;
}
