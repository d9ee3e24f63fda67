/** Rebuilding a stored layer's exact tar stream from its tar-split and objects. */
import { once } from 'node:events';
import type fs from 'node:fs';
import { type Digest, Hasher } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import type { StoredEntry } from './records.js';
import type { Store } from './store.js';

/** Streams the layer's original tar, byte for byte. */
export async function* rebuildLayerTar(store: Store, diffID: Digest): AsyncGenerator<Buffer> {
  const reader = store.openReader();
  try {
    for await (const record of store.readLayerTarSplit(diffID)) {
      if ('r' in record) {
        yield record.r;
        continue;
      }
      const entry = record.e;
      if (entry.type !== 'file' || entry.size === 0 || !entry.digest) continue;
      try {
        yield* reader.pieces({ digest: entry.digest, size: entry.size, path: entry.path });
      } catch (error) {
        throw error instanceof VerificationError ? error.withContext({ digest: diffID }) : error;
      }
    }
  } finally {
    reader.close();
  }
}

/** The entries of a layer, in tar order. */
export function layerEntries(store: Store, diffID: Digest): AsyncGenerator<StoredEntry> {
  return store.layerEntries(diffID);
}

/**
 * Rebuilds a layer into `sink` while hashing it, and fails unless it hashes to its DiffID: what
 * `save` writes is proven, not assumed.
 */
export async function writeVerifiedLayer(
  store: Store,
  diffID: Digest,
  sink: fs.WriteStream,
): Promise<number> {
  const hasher = new Hasher();
  for await (const piece of rebuildLayerTar(store, diffID)) {
    hasher.update(piece);
    if (!sink.write(piece)) await once(sink, 'drain');
  }
  await new Promise<void>((resolve, reject) =>
    sink.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  const actual = hasher.digest();
  if (actual !== diffID) {
    throw new VerificationError(
      `stored layer does not rebuild to its DiffID: expected ${diffID}, got ${actual} (store damaged?)`,
      {
        digest: diffID,
      },
    );
  }
  return hasher.bytes;
}
