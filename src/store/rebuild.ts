/** Rebuilding a stored layer's exact tar stream from its tar-split and objects. */
import { once } from 'node:events';
import type fs from 'node:fs';
import { type Digest, Hasher } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { type ObjectLocation, ObjectReader } from './packs.js';
import type { StoredEntry } from './records.js';
import type { Store } from './store.js';
import { readTarSplit } from './tarsplit.js';

/** Streams the layer's original tar, byte for byte. */
export async function* rebuildLayerTar(store: Store, diffID: Digest): AsyncGenerator<Buffer> {
  const reader = new ObjectReader();
  try {
    for await (const record of readTarSplit(store.layerTarSplitPath(diffID))) {
      if ('r' in record) {
        yield record.r;
        continue;
      }
      const entry = record.e;
      if (entry.type !== 'file' || entry.size === 0 || !entry.digest) continue;
      const location = store.locate(entry.digest, entry.size);
      if (!location)
        throw new VerificationError(`object ${entry.digest} of "${entry.path}" is missing from the store`, {
          digest: diffID,
          path: entry.path,
        });
      yield* readObjectPieces(location, reader);
    }
  } finally {
    reader.close();
  }
}

/** An object's bytes: small ones in one read (through the pack window), large ones in pieces. */
function readObjectPieces(location: ObjectLocation, reader: ObjectReader): Iterable<Buffer> {
  return location.size <= 1024 * 1024 ? [reader.read(location)] : reader.pieces(location);
}

/** The entries of a layer, in tar order. */
export async function* layerEntries(store: Store, diffID: Digest): AsyncGenerator<StoredEntry> {
  for await (const record of readTarSplit(store.layerTarSplitPath(diffID))) if ('e' in record) yield record.e;
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
