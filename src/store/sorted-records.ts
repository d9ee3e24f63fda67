/**
 * The store's binary indexes (pack indexes, chunk indexes) are tables of fixed-size records
 * sorted by a leading 32-byte sha256, searched in place without building objects.
 */

/** Every table starts with an 8-byte magic, a u32 LE version (1) and a u32 LE record count. */
export const TABLE_HEADER = 16;
const TABLE_VERSION = 1;

/**
 * Writes a table: the header, then the records sorted by their leading 32 bytes. Records are
 * written as they come and then sorted as bytes: sorting the digest strings first cost a 100k-file
 * layer ~1.5 s of string comparisons (its pack index and object list), sorting record numbers by
 * their first four bytes (the rest only on a tie) about a tenth of that. `records` must not
 * repeat a key.
 */
export function encodeTable<T>(
  magic: string,
  recordSize: number,
  records: Iterable<T>,
  write: (out: Buffer, at: number, record: T) => void,
): Buffer {
  const items = Array.isArray(records) ? (records as readonly T[]) : [...records];
  const unsorted = Buffer.allocUnsafe(items.length * recordSize);
  for (let i = 0; i < items.length; i++) write(unsorted, i * recordSize, items[i]!);
  const out = Buffer.allocUnsafe(TABLE_HEADER + unsorted.length);
  out.write(magic, 0, 'latin1');
  out.writeUInt32LE(TABLE_VERSION, 8);
  out.writeUInt32LE(items.length, 12);
  const order = sortedOrder(unsorted, recordSize, items.length);
  for (let i = 0; i < order.length; i++) {
    const from = order[i]! * recordSize;
    unsorted.copy(out, TABLE_HEADER + i * recordSize, from, from + recordSize);
  }
  return out;
}

/** Record numbers in the order of their leading 32 bytes. */
function sortedOrder(records: Buffer, recordSize: number, count: number): Uint32Array {
  const heads = new Uint32Array(count);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    heads[i] = records.readUInt32BE(i * recordSize);
    order[i] = i;
  }
  return order.sort((a, b) => {
    const ha = heads[a]!;
    const hb = heads[b]!;
    if (ha !== hb) return ha < hb ? -1 : 1;
    const at = a * recordSize;
    const bt = b * recordSize;
    return records.compare(records, bt, bt + 32, at, at + 32);
  });
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

/** A u64 LE of a safe integer, without a BigInt per field (indexes have one or two per record). */
export function writeU64(out: Buffer, value: number, at: number): void {
  out.writeUInt32LE(value % 0x1_0000_0000, at);
  out.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}
