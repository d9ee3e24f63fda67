/** The local side of images: listing, finding by name or digest, removing. */
import { type Digest, isDigest } from '../digest/index.js';
import { NotFoundError, UsageError } from '../errors/index.js';
import { formatPlatform } from '../manifest/index.js';
import { parseReference, storeName } from '../reference/index.js';
import type { ImageRecord, NameRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

export interface ImageSummary {
  configDigest: Digest;
  names: string[];
  manifestDigests: Digest[];
  platform: string;
  layers: number;
  /** Uncompressed size: the sum of the layers' tar sizes. */
  size: number;
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
  // Named images by name, then unnamed ones, each by digest: a stated order, never directory order.
  const key = (s: ImageSummary) => `${s.names.length ? '0' : '1'}${s.names[0] ?? ''}\u0000${s.configDigest}`;
  return summaries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function summarise(store: Store, record: ImageRecord, names: NameRecord[]): Promise<ImageSummary> {
  let size = 0;
  for (const diffID of record.diffIDs) size += (await store.readLayer(diffID)).tarSize;
  const manifests = await store.readImageManifests(record.configDigest);
  return {
    configDigest: record.configDigest,
    names: names.map((n) => n.name).sort(),
    manifestDigests: manifests.map((m) => m.record.digest),
    platform: formatPlatform(record.platform),
    layers: record.diffIDs.length,
    size,
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
 */
export async function findImage(store: Store, text: string): Promise<FoundImage> {
  const byName = await findByName(store, text);
  if (byName) return byName;
  const hex = text.replace(/^sha256:/, '');
  if (/^[a-f0-9]{6,64}$/.test(hex)) {
    const matches = (await store.listImages()).filter((d) => d.slice(7).startsWith(hex));
    if (matches.length > 1)
      throw new UsageError(`digest prefix ${text} is ambiguous (${matches.length} images)`);
    if (matches.length === 1)
      return { configDigest: matches[0]!, record: await store.readImage(matches[0]!) };
    if (isDigest(text) || hex.length === 64) {
      // A manifest digest names an image too.
      for (const name of await store.listNames()) {
        if (name.manifestDigest.slice(7) === hex)
          return { configDigest: name.configDigest, record: await store.readImage(name.configDigest), name };
      }
    }
  }
  throw new NotFoundError(`image ${text} is not in the store`, { image: text });
}

async function findByName(store: Store, text: string): Promise<FoundImage | undefined> {
  let name: string;
  try {
    name = storeName(parseReference(text));
  } catch {
    return undefined;
  }
  const record = (await store.readName(name)) ?? (await store.readName(text));
  if (!record || !store.hasImage(record.configDigest)) return undefined;
  return {
    configDigest: record.configDigest,
    record: await store.readImage(record.configDigest),
    name: record,
  };
}

export interface RemovalResult {
  untagged: string[];
  deleted: Digest[];
}

/**
 * `rmi`: by name, removes that name and the image once no name is left; by digest, removes the
 * image with all its names. Layers and objects stay until `gc`.
 */
export async function removeImage(store: Store, text: string): Promise<RemovalResult> {
  const found = await findImage(store, text);
  const names = await store.listNames();
  const untagged: string[] = [];
  const byName = found.name !== undefined && !/^(sha256:)?[a-f0-9]{6,64}$/.test(text);
  const toRemove = byName ? [found.name!] : names.filter((n) => n.configDigest === found.configDigest);
  for (const n of toRemove) if (await store.removeName(n.name)) untagged.push(n.name);
  const remaining = (await store.listNames()).filter((n) => n.configDigest === found.configDigest);
  const deleted: Digest[] = [];
  if (remaining.length === 0) {
    await store.removeImage(found.configDigest);
    deleted.push(found.configDigest);
  }
  return { untagged, deleted };
}
