/**
 * Where chunks of stored files can be read, for partial pulls: a chunk digest (from a chunked
 * layer's TOC) → the object holding it and its range. One binary file per layer (chunks.idx,
 * written before the layer is committed), all of them searched in memory:
 *   "SKIFFCHK" u32 version u32 count, then count × (32-byte chunk sha256, 32-byte object sha256,
 *   u64 offset, u64 size), sorted by chunk digest.
 */
import fs from 'node:fs';
import { type Digest, isDigest } from '../digest/index.js';
import type { StoreLayout } from './layout.js';
import type { ChunkRef } from './records.js';
import { encodeTable, findRecord, TABLE_HEADER, tableCount, writeU64 } from './sorted-records.js';

const MAGIC = 'SKIFFCHK';
const ENTRY = 80;

export function encodeChunkIndex(chunks: readonly ChunkRef[]): Buffer {
  const unique = new Map(chunks.map((c) => [c.digest, c])).values();
  return encodeTable(MAGIC, ENTRY, unique, (out, at, c) => {
    out.write(c.digest.slice(7), at, 'hex');
    out.write(c.object.slice(7), at + 32, 'hex');
    writeU64(out, c.offset, at + 64);
    writeU64(out, c.size, at + 72);
  });
}

/** Every committed layer's chunk index, loaded on first use (layers sorted: a stated order). */
export class ChunkIndexSet {
  private loaded: Buffer[] | undefined;

  constructor(private readonly layout: StoreLayout) {}

  find(digest: Digest): ChunkRef | undefined {
    const key = Buffer.from(digest.slice(7), 'hex');
    for (const bytes of this.indexes()) {
      const at = findRecord(bytes, TABLE_HEADER, ENTRY, bytes.readUInt32LE(12), key);
      if (at < 0) continue;
      return {
        digest,
        object: `sha256:${bytes.toString('hex', at + 32, at + 64)}`,
        offset: Number(bytes.readBigUInt64LE(at + 64)),
        size: Number(bytes.readBigUInt64LE(at + 72)),
      };
    }
    return undefined;
  }

  /** Loads a layer this process just committed. */
  add(diffID: Digest): void {
    const bytes = readIndex(this.layout.layer(diffID).chunks);
    if (this.loaded && bytes) this.loaded.push(bytes);
  }

  private indexes(): Buffer[] {
    if (!this.loaded) {
      const dir = this.layout.layersDir;
      const layers = (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [])
        .map((hex) => `sha256:${hex}` as const)
        .filter(isDigest);
      this.loaded = layers
        .map((diffID) => readIndex(this.layout.layer(diffID).chunks))
        .filter((b): b is Buffer => b !== undefined);
    }
    return this.loaded;
  }
}

function readIndex(file: string): Buffer | undefined {
  try {
    const bytes = fs.readFileSync(file);
    return tableCount(bytes, MAGIC, ENTRY) === undefined ? undefined : bytes;
  } catch {
    return undefined;
  }
}
