/**
 * `skiff fsck`: checks the whole store, reading everything (docs/store.md, "fsck"). Every name
 * points at an image; every image has its record, its config and manifests (hashing to their
 * digests) and its layers; every committed layer has its record and tar-split, every object its
 * entries name, and rebuilds to a tar that hashes to its DiffID at its recorded size; every pack
 * has its data and every object (packed or loose) hashes to its digest.
 *
 * Leftovers gc removes (staging, sessions, a layer directory without its record that no image
 * uses, a pack without its index) are not damage: nothing reads them.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Digest, Hasher, isDigest, sha256 } from '../digest/index.js';
import { safeJson } from '../util/files.js';
import type { StoreLayout } from './layout.js';
import { loadIndex, ObjectReader, type PackIndex, packNames } from './packs.js';
import { rebuildLayerTar } from './rebuild.js';
import { NameRecordFileSchema } from './records.js';
import type { Store } from './store.js';

export type DamageKind = 'name' | 'image' | 'layer' | 'pack' | 'object';

export interface StoreDamage {
  kind: DamageKind;
  /** What is damaged: a name, an image's config digest, a layer's DiffID, a pack's file, an object's digest. */
  subject: string;
  message: string;
  /** The file concerned, when there is one. */
  file?: string;
}

export interface FsckResult {
  store: string;
  clean: boolean;
  names: number;
  images: number;
  layers: number;
  packs: number;
  objects: number;
  damage: StoreDamage[];
}

/** The one line `skiff fsck` prints for a damage. */
export function formatDamage(d: StoreDamage): string {
  return `${d.kind} ${d.subject}: ${d.message}`;
}

export async function checkStore(store: Store): Promise<FsckResult> {
  const damage: StoreDamage[] = [];
  const names = await checkNames(store, damage);
  const images = await checkImages(store, damage);
  const layers = await checkLayers(store, damage);
  const { packs, objects } = await checkObjects(store, damage);
  return { store: store.root, clean: damage.length === 0, names, images, layers, packs, objects, damage };
}

async function checkNames(store: Store, damage: StoreDamage[]): Promise<number> {
  const dir = store.layout.namesDir;
  const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.json') && !f.includes('.tmp-')).sort();
  for (const file of files) {
    const full = path.join(dir, file);
    const subject = decodeURIComponent(file.slice(0, -'.json'.length));
    const parsed = NameRecordFileSchema.safeParse(safeJson(await fsp.readFile(full, 'utf8')));
    if (!parsed.success) {
      damage.push({ kind: 'name', subject, message: 'name record is corrupt', file: full });
    } else if (!store.hasImage(parsed.data.configDigest)) {
      damage.push({
        kind: 'name',
        subject,
        message: `points at image ${parsed.data.configDigest}, which is not in the store`,
        file: full,
      });
    }
  }
  return files.length;
}

async function checkImages(store: Store, damage: StoreDamage[]): Promise<number> {
  const hexes = (await fsp.readdir(store.layout.imagesDir)).filter(isHex).sort();
  for (const hex of hexes) {
    const configDigest = `sha256:${hex}` as Digest;
    const files = store.layout.image(configDigest);
    const fault = (message: string, file?: string) =>
      damage.push({ kind: 'image', subject: configDigest, message, ...(file ? { file } : {}) });
    let diffIDs: Digest[];
    try {
      const record = await store.readImage(configDigest);
      if (record.configDigest !== configDigest) fault(`image.json names ${record.configDigest}`);
      diffIDs = record.diffIDs;
    } catch (error) {
      fault(`${path.basename(files.record)}: ${(error as Error).message}`, files.record);
      continue;
    }
    const configFile = files.config;
    const config = await fsp.readFile(configFile).catch(() => undefined);
    if (!config) fault('config.json is missing', configFile);
    else if (sha256(config) !== configDigest) fault(`config.json hashes to ${sha256(config)}`, configFile);
    try {
      for (const manifest of await store.readImageManifests(configDigest)) {
        const actual = sha256(manifest.bytes);
        if (actual !== manifest.record.digest)
          fault(`manifest ${manifest.record.digest} hashes to ${actual}`);
      }
    } catch (error) {
      fault(`manifests: ${(error as Error).message}`);
    }
    for (const diffID of diffIDs) if (!store.hasLayer(diffID)) fault(`layer ${diffID} is not in the store`);
  }
  return hexes.length;
}

async function checkLayers(store: Store, damage: StoreDamage[]): Promise<number> {
  let checked = 0;
  const hexes = (await fsp.readdir(store.layout.layersDir)).filter(isHex).sort();
  for (const hex of hexes) {
    const diffID = `sha256:${hex}` as Digest;
    // Without its record a directory is not a layer: an unused one is gc's; a used one, the image's damage.
    if (!store.hasLayer(diffID)) continue;
    checked++;
    const problem = await checkLayer(store, diffID);
    if (problem) damage.push({ kind: 'layer', subject: diffID, ...problem });
  }
  return checked;
}

async function checkLayer(
  store: Store,
  diffID: Digest,
): Promise<{ message: string; file?: string } | undefined> {
  try {
    const record = await store.readLayer(diffID);
    if (record.diffID !== diffID) return { message: `layer.json names ${record.diffID}` };
    const gap = await store.missingLayerParts(diffID, { thorough: true });
    if (gap?.part === 'record' || gap?.part === 'tar-split')
      return { message: `${path.basename(gap.file)} is missing`, file: gap.file };
    if (gap?.part === 'objects') {
      const first = gap.objects[0]!;
      return {
        message: `${gap.objects.length} object(s) missing, first ${first.digest} (${JSON.stringify(first.path)})`,
      };
    }
    const unlisted = await unlistedObjects(store, diffID);
    if (unlisted > 0)
      return {
        message: `${path.basename(store.layout.layer(diffID).objects)} does not list ${unlisted} object(s) its entries name`,
      };
    const hasher = new Hasher();
    for await (const piece of rebuildLayerTar(store, diffID)) hasher.update(piece);
    const actual = hasher.digest();
    if (actual !== diffID || hasher.bytes !== record.tarSize)
      return {
        message: `rebuilds to ${actual} (${hasher.bytes} bytes, recorded ${record.tarSize}), not its DiffID`,
      };
    return undefined;
  } catch (error) {
    return { message: `does not rebuild: ${(error as Error).message}` };
  }
}

/** Objects the tar-split names that the layer's objects.idx (which reuse trusts) does not list. */
async function unlistedObjects(store: Store, diffID: Digest): Promise<number> {
  const listed = store.layerObjectList(diffID);
  if (!listed) return 0; // a layer from before objects.idx: reuse reads its tar-split
  const known = new Set(listed);
  let unlisted = 0;
  for await (const entry of store.layerEntries(diffID))
    if (entry.digest && entry.size > 0 && !known.has(entry.digest)) unlisted++;
  return unlisted;
}

async function checkObjects(
  store: Store,
  damage: StoreDamage[],
): Promise<{ packs: number; objects: number }> {
  const { layout } = store;
  let objects = 0;
  const names = packNames(layout);
  for (const name of names) objects += checkPack(layout, name, damage);
  for (const shard of (await fsp.readdir(layout.objectsDir)).sort()) {
    const dir = layout.objectShard(shard);
    for (const file of (await fsp.readdir(dir)).sort()) {
      if (file.includes('.tmp-')) continue;
      objects++;
      const full = path.join(dir, file);
      const actual = await hashFile(full);
      if (!isHex(file) || actual !== `sha256:${file}`)
        damage.push({
          kind: 'object',
          subject: `sha256:${file}`,
          message: `hashes to ${actual}`,
          file: full,
        });
    }
  }
  return { packs: names.length, objects };
}

/** Hashes every object of one pack, in the order they sit in it; returns how many its index names. */
function checkPack(layout: StoreLayout, name: string, damage: StoreDamage[]): number {
  const packFile = layout.packFile(name);
  const subject = path.relative(layout.root, packFile);
  let index: PackIndex;
  try {
    index = loadIndex(layout, name);
  } catch (error) {
    damage.push({ kind: 'pack', subject, message: (error as Error).message });
    return 0;
  }
  const entries = [...index.entries()].sort((a, b) => a.offset - b.offset);
  const size = fs.statSync(packFile, { throwIfNoEntry: false })?.size;
  if (size === undefined) {
    damage.push({
      kind: 'pack',
      subject,
      message: `is missing (its index names ${entries.length} objects)`,
      file: packFile,
    });
    return entries.length;
  }
  const reader = new ObjectReader();
  try {
    for (const entry of entries) {
      if (entry.offset + entry.size > size) {
        damage.push({
          kind: 'pack',
          subject,
          message: `is truncated at ${size} bytes (${entry.digest} ends at ${entry.offset + entry.size})`,
          file: packFile,
        });
        break;
      }
      const actual = sha256(
        reader.read({ path: packFile, offset: entry.offset, size: entry.size, packed: true }),
      );
      if (actual !== entry.digest)
        damage.push({
          kind: 'object',
          subject: entry.digest,
          message: `in ${subject} hashes to ${actual}`,
          file: packFile,
        });
    }
  } finally {
    reader.close();
  }
  return entries.length;
}

async function hashFile(file: string): Promise<Digest> {
  const hasher = new Hasher();
  const reader = new ObjectReader();
  try {
    const size = fs.statSync(file).size;
    for (const piece of reader.pieces({ path: file, offset: 0, size, packed: false })) hasher.update(piece);
  } finally {
    reader.close();
  }
  return hasher.digest();
}

/** A directory or file named by a digest's hex. */
function isHex(name: string): boolean {
  return isDigest(`sha256:${name}`);
}
