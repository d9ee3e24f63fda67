/**
 * NaCl's secretbox open (XSalsa20-Poly1305), the cipher of cosign's encrypted private keys.
 * node:crypto has neither Salsa20 nor a standalone Poly1305, and no package in the install provides
 * them (the report names tweetnacl as the well-kept choice); a key file is a few hundred bytes, so a
 * plain implementation after the NaCl paper (Bernstein, "Cryptography in NaCl") serves. Only
 * decryption is needed: skiff reads keys, it does not write them. Checked against keys written by
 * skopeo 1.18 (test/unit/cosign-key.test.ts).
 */
import crypto from 'node:crypto';

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

const rotl = (x: number, n: number) => (x << n) | (x >>> (32 - n));

/** Salsa20's 20 rounds over `state`; the caller adds the input (Salsa20) or not (HSalsa20). */
function rounds(state: Uint32Array): Uint32Array {
  const x = Uint32Array.from(state);
  const qr = (a: number, b: number, c: number, d: number) => {
    x[b]! ^= rotl((x[a]! + x[d]!) | 0, 7);
    x[c]! ^= rotl((x[b]! + x[a]!) | 0, 9);
    x[d]! ^= rotl((x[c]! + x[b]!) | 0, 13);
    x[a]! ^= rotl((x[d]! + x[c]!) | 0, 18);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12);
    qr(5, 9, 13, 1);
    qr(10, 14, 2, 6);
    qr(15, 3, 7, 11);
    qr(0, 1, 2, 3);
    qr(5, 6, 7, 4);
    qr(10, 11, 8, 9);
    qr(15, 12, 13, 14);
  }
  return x;
}

function words(bytes: Buffer): number[] {
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readUInt32LE(i * 4));
}

/** The state layout both functions share: constants on the diagonal, key around, 16 bytes in the middle. */
function state(key: Buffer, middle: number[]): Uint32Array {
  const k = words(key);
  return Uint32Array.from([
    SIGMA[0]!,
    ...k.slice(0, 4),
    SIGMA[1]!,
    ...middle,
    SIGMA[2]!,
    ...k.slice(4, 8),
    SIGMA[3]!,
  ]);
}

function hsalsa20(key: Buffer, nonce16: Buffer): Buffer {
  const x = rounds(state(key, words(nonce16)));
  const out = Buffer.alloc(32);
  [0, 5, 10, 15, 6, 7, 8, 9].forEach((w, i) => {
    out.writeUInt32LE(x[w]!, i * 4);
  });
  return out;
}

/** `length` bytes of Salsa20 keystream for `key` and an 8-byte nonce, from block 0. */
function salsa20Stream(key: Buffer, nonce8: Buffer, length: number): Buffer {
  const out = Buffer.alloc(Math.ceil(length / 64) * 64);
  const n = words(nonce8);
  for (let block = 0; block * 64 < length; block++) {
    const input = state(key, [n[0]!, n[1]!, block >>> 0, Math.floor(block / 2 ** 32)]);
    const x = rounds(input);
    for (let i = 0; i < 16; i++) out.writeUInt32LE((x[i]! + input[i]!) >>> 0, block * 64 + i * 4);
  }
  return out.subarray(0, length);
}

const le = (bytes: Buffer) => BigInt(`0x${Buffer.from(bytes).reverse().toString('hex') || '0'}`);

function poly1305(key: Buffer, message: Buffer): Buffer {
  const p = (1n << 130n) - 5n;
  const r = le(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = le(key.subarray(16, 32));
  let acc = 0n;
  for (let i = 0; i < message.length; i += 16) {
    const chunk = message.subarray(i, i + 16);
    acc = ((acc + le(chunk) + (1n << BigInt(8 * chunk.length))) * r) % p;
  }
  const tag = (acc + s) & ((1n << 128n) - 1n);
  return Buffer.from(tag.toString(16).padStart(32, '0'), 'hex').reverse();
}

/** Opens a secretbox (16-byte tag, then the ciphertext); undefined when the tag does not match. */
export function secretboxOpen(box: Buffer, nonce: Buffer, key: Buffer): Buffer | undefined {
  if (key.length !== 32 || nonce.length !== 24 || box.length < 16) return undefined;
  const stream = salsa20Stream(
    hsalsa20(key, nonce.subarray(0, 16)),
    nonce.subarray(16),
    32 + box.length - 16,
  );
  const tag = box.subarray(0, 16);
  const ciphertext = box.subarray(16);
  if (!crypto.timingSafeEqual(poly1305(stream.subarray(0, 32), ciphertext), tag)) return undefined;
  const plain = Buffer.alloc(ciphertext.length);
  for (let i = 0; i < ciphertext.length; i++) plain[i] = ciphertext[i]! ^ stream[32 + i]!;
  return plain;
}
