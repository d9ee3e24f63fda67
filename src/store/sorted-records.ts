/**
 * The store's binary indexes (pack indexes, chunk indexes) are tables of fixed-size records
 * sorted by a leading 32-byte sha256, searched in place without building objects.
 */

/** Every table starts with an 8-byte magic, a u32 LE version (1) and a u32 LE record count. */
export const TABLE_HEADER = 16;
const TABLE_VERSION = 1;

/** Writes a table: the header, then each record at its fixed offset. Sort `records` first. */
export function encodeTable<T>(
  magic: string,
  recordSize: number,
  records: readonly T[],
  write: (out: Buffer, at: number, record: T) => void,
): Buffer {
  const out = Buffer.alloc(TABLE_HEADER + records.length * recordSize);
  out.write(magic, 0, 'latin1');
  out.writeUInt32LE(TABLE_VERSION, 8);
  out.writeUInt32LE(records.length, 12);
  records.forEach((record, i) => {
    write(out, TABLE_HEADER + i * recordSize, record);
  });
  return out;
}

/** The record count of a well-formed table with this magic and record size, or undefined. */
export function tableCount(bytes: Buffer, magic: string, recordSize: number): number | undefined {
  if (bytes.length < TABLE_HEADER || bytes.toString('latin1', 0, 8) !== magic) return undefined;
  if (bytes.readUInt32LE(8) !== TABLE_VERSION) return undefined;
  const count = bytes.readUInt32LE(12);
  return bytes.length === TABLE_HEADER + count * recordSize ? count : undefined;
}

/** The byte offset of the record whose first 32 bytes equal `key`, or -1. */
export function findRecord(
  bytes: Buffer,
  header: number,
  recordSize: number,
  count: number,
  key: Buffer,
): number {
  // Most steps are decided by the first four bytes: compared in JS, they spare a native call each
  // (a pull looks up every file of a layer, ~14 steps per lookup per index).
  const head = key.readUInt32BE(0);
  let lo = 0;
  let hi = count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = header + mid * recordSize;
    const word = bytes.readUInt32BE(at);
    const cmp = head !== word ? head - word : key.compare(bytes, at, at + 32);
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
