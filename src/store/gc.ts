/**
 * `skiff gc`: removes what no image references (layers, objects, chunk index entries, blob
 * records) and what interrupted pulls left behind. Mark and sweep, with pulls kept out: gc holds
 * the store lock for its whole run and refuses to start while a live pull has a session, and
 * pulls register their session under the same lock, so neither can see the other half-done.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../digest/index.js';
import { StoreBusyError } from '../errors/index.js';
import { withStoreLock } from './lock.js';
import type { Store } from './store.js';
import { readTarSplit } from './tarsplit.js';

export interface GcResult {
  layersRemoved: number;
  objectsRemoved: number;
  chunksRemoved: number;
  blobRecordsRemoved: number;
  stagingRemoved: number;
  bytesFreed: number;
}

export async function collectGarbage(store: Store): Promise<GcResult> {
  return withStoreLock(store.root, async () => {
    const live = await liveSessions(store);
    if (live.length > 0)
      throw new StoreBusyError(
        `store ${store.root} is in use by ${live.length} pull(s) in progress; run gc when they finish`,
      );
    const result: GcResult = {
      layersRemoved: 0,
      objectsRemoved: 0,
      chunksRemoved: 0,
      blobRecordsRemoved: 0,
      stagingRemoved: 0,
      bytesFreed: 0,
    };
    result.stagingRemoved = await removeStaging(store, result);
    const liveLayers = new Set<Digest>();
    for (const image of await store.listImages())
      for (const d of (await store.readImage(image)).diffIDs) liveLayers.add(d);
    const liveObjects = new Set<string>();
    for (const hex of await fsp.readdir(path.join(store.root, 'layers/sha256'))) {
      const diffID = `sha256:${hex}` as Digest;
      if (!liveLayers.has(diffID)) {
        result.bytesFreed += await removeTree(store, store.layerDir(diffID));
        result.layersRemoved++;
        continue;
      }
      for await (const record of readTarSplit(store.layerTarSplitPath(diffID))) {
        if ('e' in record && record.e.digest) liveObjects.add(record.e.digest.slice(7));
      }
    }
    await sweepFanout(
      path.join(store.root, 'objects/sha256'),
      (hex) => liveObjects.has(hex),
      result,
      'objectsRemoved',
    );
    // A chunk entry is useful only while the object it points into lives.
    await sweepFanout(
      path.join(store.root, 'chunks/sha256'),
      (_hex, file) => {
        const target = fs.readFileSync(file, 'utf8').split(' ')[0] ?? '';
        return liveObjects.has(target);
      },
      result,
      'chunksRemoved',
    );
    const blobsDir = path.join(store.root, 'blobs/sha256');
    for (const name of await fsp.readdir(blobsDir)) {
      const diffID = (await store.blobDiffID(`sha256:${name.replace(/\.json$/, '')}` as Digest))?.diffID;
      if (!diffID || !liveLayers.has(diffID)) {
        await fsp.rm(path.join(blobsDir, name), { force: true });
        result.blobRecordsRemoved++;
      }
    }
    return result;
  });
}

/** Sessions whose process is still alive; dead ones (crashed, killed) are cleared as a side effect. */
export async function liveSessions(store: Store): Promise<string[]> {
  const dir = path.join(store.root, 'sessions');
  const live: string[] = [];
  for (const file of await fsp.readdir(dir)) {
    const pid = Number(file.split('-')[0]);
    if (isAlive(pid)) live.push(file);
    else await fsp.rm(path.join(dir, file), { force: true });
  }
  return live;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function removeStaging(store: Store, result: GcResult): Promise<number> {
  const dir = path.join(store.root, 'tmp');
  let removed = 0;
  for (const name of await fsp.readdir(dir)) {
    result.bytesFreed += await removeTree(store, path.join(dir, name));
    removed++;
  }
  // Half-written small files from atomic writes (temp name beside the target) go too.
  for (const sub of ['names', 'blobs/sha256']) {
    for (const name of await fsp.readdir(path.join(store.root, sub))) {
      if (name.includes('.tmp-')) await fsp.rm(path.join(store.root, sub, name), { force: true });
    }
  }
  return removed;
}

async function sweepFanout(
  root: string,
  keep: (hex: string, file: string) => boolean,
  result: GcResult,
  counter: 'objectsRemoved' | 'chunksRemoved',
): Promise<void> {
  for (const shard of await fsp.readdir(root)) {
    const dir = path.join(root, shard);
    for (const name of await fsp.readdir(dir)) {
      const file = path.join(dir, name);
      if (!name.includes('.tmp-') && keep(name, file)) continue;
      const stat = await fsp.lstat(file).catch(() => undefined);
      await fsp.rm(file, { force: true });
      result.bytesFreed += stat?.size ?? 0;
      result[counter]++;
    }
  }
}

async function removeTree(_store: Store, target: string): Promise<number> {
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
