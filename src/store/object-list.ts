/**
 * A layer's objects.idx: every content object its entries name, so "is this layer whole?" is an
 * index lookup per object instead of a read of the tar-split (docs/design.md §6; docs/store.md).
 *   "SKIFFOBJ" u32 version u32 count, then count × 32-byte sha256, sorted.
 */
import type { Digest } from '../digest/index.js';
import { encodeTable, TABLE_HEADER, tableCount } from './sorted-records.js';

const MAGIC = 'SKIFFOBJ';
const ENTRY = 32;

export function encodeObjectList(objects: Iterable<Digest>): Buffer {
  return encodeTable(MAGIC, ENTRY, new Set(objects), (out, at, digest) => {
    out.write(digest.slice(7), at, 'hex');
  });
}

/** The digests listed, or undefined when the bytes are not a well-formed list. */
export function decodeObjectList(bytes: Buffer): Digest[] | undefined {
  const count = tableCount(bytes, MAGIC, ENTRY);
  if (count === undefined) return undefined;
  const digests: Digest[] = [];
  for (let i = 0; i < count; i++) {
    const at = TABLE_HEADER + i * ENTRY;
    digests.push(`sha256:${bytes.toString('hex', at, at + ENTRY)}`);
  }
  return digests;
}
