/**
 * The store's binary indexes (pack indexes, chunk indexes) are tables of fixed-size records
 * sorted by a leading 32-byte sha256, searched in place without building objects.
 */

/** The byte offset of the record whose first 32 bytes equal `key`, or -1. */
export function findRecord(
  bytes: Buffer,
  header: number,
  recordSize: number,
  count: number,
  key: Buffer,
): number {
  let lo = 0;
  let hi = count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = header + mid * recordSize;
    const cmp = key.compare(bytes, at, at + 32);
    if (cmp === 0) return at;
    if (cmp > 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Sorts by digest text, which orders like the raw bytes the records are searched by. */
export function byDigest<T extends { digest: string }>(a: T, b: T): number {
  return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
}
