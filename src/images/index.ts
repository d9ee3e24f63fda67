/** The local side of images: listing, finding by name or digest, removing. */
import { type Digest, isDigest } from '../digest/index.js';
import { NotFoundError, UsageError } from '../errors/index.js';
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  type Platform,
  parsePlatform,
  platformScore,
} from '../manifest/index.js';
import { parseStoredName, storeName } from '../reference/index.js';
import type { ImageRecord, NameRecord, Store } from '../store/index.js';

export interface ImageSummary {
  configDigest: Digest;
  /** Its names; a name pulled for several platforms names one image per platform. */
  names: string[];
  manifestDigests: Digest[];
  platform: string;
  layers: number;
  /**
   * Compressed size, as everywhere in skiff (pull, inspect, images): the layers' blob sizes as the
   * registry stores them and the manifest states them, summed over the manifest the image's first
   * name points to (else its first manifest).
   */
  size: number;
  /** Unpacked size: the sum of the layers' tar sizes. */
  unpackedSize: number;
  diffIDsComputed: boolean;
  createdAt: string;
}

/** Every image, with its names, sorted by name then digest (a stated order, not directory order). */
export async function listImages(store: Store): Promise<ImageSummary[]> {
  const names = await store.listNames();
  const summaries: ImageSummary[] = [];
  for (const configDigest of await store.listImages()) {
    const record = await store.readImage(configDigest);
    const mine = names.filter((n) => n.configDigest === configDigest);
    summaries.push(await summarise(store, record, mine));
  }
  // Named images by name and platform, then unnamed ones, each by digest: a stated order, never
  // directory order.
  const key = (s: ImageSummary) =>
    `${s.names.length ? '0' : '1'}${s.names[0] ?? ''}\u0000${s.platform}\u0000${s.configDigest}`;
  return summaries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function summarise(store: Store, record: ImageRecord, names: NameRecord[]): Promise<ImageSummary> {
  let unpackedSize = 0;
  for (const diffID of record.diffIDs) unpackedSize += (await store.readLayer(diffID)).tarSize;
  const manifests = await store.readImageManifests(record.configDigest);
  const sorted = [...names].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const primary = manifests.find((m) => m.record.digest === sorted[0]?.manifestDigest) ?? manifests[0];
  return {
    configDigest: record.configDigest,
    names: [...new Set(sorted.map((n) => n.name))],
    manifestDigests: manifests.map((m) => m.record.digest),
    platform: formatPlatform(record.platform),
    layers: record.diffIDs.length,
    size: primary ? primary.record.layers.reduce((sum, l) => sum + l.size, 0) : 0,
    unpackedSize,
    diffIDsComputed: record.diffIDsComputed,
    createdAt: record.createdAt,
  };
}

export interface FoundImage {
  configDigest: Digest;
  record: ImageRecord;
  /** The name it was found by, if any. */
  name?: NameRecord | undefined;
}

/**
 * Finds a stored image by name (normalised like a pull reference: `alpine` is
 * docker.io/library/alpine:latest), by config digest, or by an unambiguous digest prefix (≥ 6 hex).
 * A name pulled for several platforms names several images: `platform` chooses; without it, the
 * one that best runs on this host, else the one pulled last.
 */
export async function findImage(store: Store, text: string, platform?: string): Promise<FoundImage> {
  const wanted = platform === undefined ? undefined : parsePlatform(platform);
  const byName = await findByName(store, text, wanted);
  if (byName) return byName;
  const hex = text.replace(/^sha256:/, '');
  if (/^[a-f0-9]{6,64}$/.test(hex)) {
    const matches = (await store.listImages()).filter((d) => d.slice(7).startsWith(hex));
    if (matches.length > 1)
      throw new UsageError(`digest prefix ${text} is ambiguous (${matches.length} images)`);
    if (matches.length === 1)
      return checkPlatform(
        text,
        { configDigest: matches[0]!, record: await store.readImage(matches[0]!) },
        wanted,
      );
    if (isDigest(text) || hex.length === 64) {
      // A manifest digest names an image too.
      for (const name of await store.listNames()) {
        if (name.manifestDigest.slice(7) === hex)
          return checkPlatform(
            text,
            { configDigest: name.configDigest, record: await store.readImage(name.configDigest), name },
            wanted,
          );
      }
    }
  }
  throw new NotFoundError(`image ${text} is not in the store`, { image: text });
}

async function findByName(
  store: Store,
  text: string,
  wanted: Platform | undefined,
): Promise<FoundImage | undefined> {
  const records = await nameRecords(store, text);
  if (records.length === 0) return undefined;
  const record = chooseName(text, records, wanted);
  return {
    configDigest: record.configDigest,
    record: await store.readImage(record.configDigest),
    name: record,
  };
}

/**
 * Every image a name holds, one per platform it was pulled for (sorted by platform); empty when
 * `text` names no stored image by name (it may still be a digest: see findImage).
 */
export async function findImagesByName(store: Store, text: string): Promise<FoundImage[]> {
  const records = await nameRecords(store, text);
  return Promise.all(
    records.map(async (name) => ({
      configDigest: name.configDigest,
      record: await store.readImage(name.configDigest),
      name,
    })),
  );
}

/** The records of a name (normalised like a pull reference, else as written) whose image is stored. */
async function nameRecords(store: Store, text: string): Promise<NameRecord[]> {
  let name: string;
  try {
    name = storeName(parseStoredName(text));
  } catch {
    return [];
  }
  let records = await store.readNames(name);
  if (records.length === 0) records = await store.readNames(text);
  return records.filter((r) => store.hasImage(r.configDigest));
}

/**
 * The record of a name for the platform wanted (an explicit --platform), else for this host, scored
 * as pull scores an index's entries (`linux/arm` takes the best of v7, v6, v5); among equals, the
 * one pulled last. Without --platform and no record this host runs, the one pulled last.
 */
function chooseName(text: string, records: NameRecord[], wanted: Platform | undefined): NameRecord {
  const target = wanted ?? hostPlatform();
  const scored = records.map((r) => ({ r, score: platformScore(parseStoredPlatform(r.platform), target) }));
  const best = Math.max(...scored.map((s) => s.score));
  if (best === 0 && wanted)
    throw new NotFoundError(
      `image ${text} is not in the store for ${formatPlatform(wanted)} (it is for ${records.map((r) => r.platform).join(', ')})`,
      { image: text },
    );
  const candidates = best > 0 ? scored.filter((s) => s.score === best).map((s) => s.r) : records;
  return candidates.reduce((a, b) => (b.updatedAt > a.updatedAt ? b : a));
}

/** An image found by digest, checked against an explicit --platform. */
function checkPlatform(text: string, found: FoundImage, wanted: Platform | undefined): FoundImage {
  if (!wanted || platformScore(found.record.platform, wanted) > 0) return found;
  throw new NotFoundError(
    `image ${text} is for ${formatPlatform(found.record.platform)}, not ${formatPlatform(wanted)}`,
    { image: text },
  );
}

/** A stored platform text back to a platform (normalised, as --platform is). */
function parseStoredPlatform(text: string): Platform {
  const [os = '', architecture = '', variant] = text.split('/');
  return normalizePlatform({ os, architecture, ...(variant ? { variant } : {}) });
}

/** Whether `text` reads as a digest or digest prefix (sha256:HEX or ≥ 6 hex) rather than a name. */
export function namesDigest(text: string): boolean {
  return /^(sha256:)?[a-f0-9]{6,64}$/.test(text);
}

export interface RemovalResult {
  /** Each name removed, with the platform it was for. */
  untagged: Array<{ name: string; platform: string }>;
  deleted: Digest[];
}

/**
 * `rmi`: by name, removes that name (for the platform chosen as findImage does) and the image once
 * no name is left; by digest, removes the image with all its names. Layers and objects stay until `gc`.
 */
export async function removeImage(store: Store, text: string, platform?: string): Promise<RemovalResult> {
  const found = await findImage(store, text, platform);
  const names = await store.listNames();
  const untagged: RemovalResult['untagged'] = [];
  const byName = found.name !== undefined && !namesDigest(text);
  const toRemove = byName ? [found.name!] : names.filter((n) => n.configDigest === found.configDigest);
  for (const n of toRemove)
    if (await store.removeName(n.name, n.platform)) untagged.push({ name: n.name, platform: n.platform });
  const remaining = (await store.listNames()).filter((n) => n.configDigest === found.configDigest);
  const deleted: Digest[] = [];
  if (remaining.length === 0) {
    await store.removeImage(found.configDigest);
    deleted.push(found.configDigest);
  }
  return { untagged, deleted };
}
