/**
 * CRC-64 with the ISO polynomial, exactly as Go's `hash/crc64` computes it with `crc64.ISO`
 * (reflected, initial value and final XOR all ones; known as CRC-64/GO-ISO). tar-split stores this
 * sum of each file's content as the 8-byte big-endian payload of its file records, and Go's
 * tar-split checks it when it reassembles a layer, so it has to be bit-exact.
 *
 * JavaScript has no fast 64-bit integers, so the register is kept as two uint32 halves, and the
 * bulk of the input goes through slicing-by-8 tables (eight bytes per step, no allocation).
 */

/** The ISO polynomial x^64 + x^4 + x^3 + x + 1, bit-reversed: 0xD800000000000000. */
const POLY_HI = 0xd8000000;
const POLY_LO = 0;

/** Eight 256-entry tables, high and low halves kept apart: TABLE_x[k * 256 + byte]. */
const TABLE_HI = new Uint32Array(8 * 256);
const TABLE_LO = new Uint32Array(8 * 256);

function buildTables(): void {
  for (let b = 0; b < 256; b++) {
    let hi = 0;
    let lo = b;
    for (let bit = 0; bit < 8; bit++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi >>>= 1;
      if (lsb) {
        hi = (hi ^ POLY_HI) >>> 0;
        lo = (lo ^ POLY_LO) >>> 0;
      }
    }
    TABLE_HI[b] = hi;
    TABLE_LO[b] = lo;
  }
  // Table k advances a byte that is followed by k more: one step of the byte-wise update on table k-1.
  for (let k = 1; k < 8; k++) {
    for (let b = 0; b < 256; b++) {
      const hi = TABLE_HI[(k - 1) * 256 + b]!;
      const lo = TABLE_LO[(k - 1) * 256 + b]!;
      const index = lo & 0xff;
      TABLE_HI[k * 256 + b] = ((hi >>> 8) ^ TABLE_HI[index]!) >>> 0;
      TABLE_LO[k * 256 + b] = (((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index]!) >>> 0;
    }
  }
}
buildTables();

/** An incremental CRC-64/GO-ISO. */
export class Crc64 {
  // The register, already inverted (Go inverts on entry and on exit of every update).
  private hi = 0xffffffff;
  private lo = 0xffffffff;

  update(data: Uint8Array): this {
    let hi = this.hi;
    let lo = this.lo;
    const end = data.length;
    const bulkEnd = end - (end & 7);
    let i = 0;
    for (; i < bulkEnd; i += 8) {
      lo ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      hi ^= data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      const a = 7 * 256 + (lo & 0xff);
      const b = 6 * 256 + ((lo >>> 8) & 0xff);
      const c = 5 * 256 + ((lo >>> 16) & 0xff);
      const d = 4 * 256 + (lo >>> 24);
      const e = 3 * 256 + (hi & 0xff);
      const f = 2 * 256 + ((hi >>> 8) & 0xff);
      const g = 256 + ((hi >>> 16) & 0xff);
      const h = hi >>> 24;
      lo =
        TABLE_LO[a]! ^
        TABLE_LO[b]! ^
        TABLE_LO[c]! ^
        TABLE_LO[d]! ^
        TABLE_LO[e]! ^
        TABLE_LO[f]! ^
        TABLE_LO[g]! ^
        TABLE_LO[h]!;
      hi =
        TABLE_HI[a]! ^
        TABLE_HI[b]! ^
        TABLE_HI[c]! ^
        TABLE_HI[d]! ^
        TABLE_HI[e]! ^
        TABLE_HI[f]! ^
        TABLE_HI[g]! ^
        TABLE_HI[h]!;
    }
    for (; i < end; i++) {
      const index = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index]!;
      hi = (hi >>> 8) ^ TABLE_HI[index]!;
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    return this;
  }

  /** The sum as Go's `Sum(nil)` returns it: 8 bytes, big-endian. */
  sum(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeUInt32BE(~this.hi >>> 0, 0);
    out.writeUInt32BE(~this.lo >>> 0, 4);
    return out;
  }
}

export function crc64(data: Uint8Array): Buffer {
  return new Crc64().update(data).sum();
}
