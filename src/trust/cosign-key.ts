/**
 * cosign's encrypted private key, as `cosign generate-key-pair` and `skopeo generate-sigstore-key`
 * write it: PEM `ENCRYPTED COSIGN PRIVATE KEY` (or `ENCRYPTED SIGSTORE PRIVATE KEY`) around JSON
 * {kdf: scrypt N/r/p + salt, cipher: nacl/secretbox + nonce, ciphertext}, the plaintext a PKCS#8
 * DER key (go-securesystemslib's `encrypted` package).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';

const scrypt = promisify(crypto.scrypt) as (
  password: crypto.BinaryLike,
  salt: crypto.BinaryLike,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>;

const EncryptedKeySchema = z.object({
  kdf: z.object({
    name: z.literal('scrypt'),
    params: z.object({
      N: z
        .number()
        .int()
        .min(2)
        .max(2 ** 20),
      r: z.number().int().min(1).max(32),
      p: z.number().int().min(1).max(16),
    }),
    salt: z.string(),
  }),
  cipher: z.object({ name: z.literal('nacl/secretbox'), nonce: z.string() }),
  ciphertext: z.string(),
});

const PEM = /-----BEGIN ENCRYPTED (?:COSIGN|SIGSTORE) PRIVATE KEY-----([\s\S]+?)-----END ENCRYPTED/;

/** The passphrase as skopeo reads --sign-passphrase-file: the first line, without its newline. */
export async function readPassphrase(file: string | undefined): Promise<string> {
  if (file === undefined) return process.env.COSIGN_PASSWORD ?? '';
  const text = await fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`passphrase file ${file}: ${error.code ?? error.message}`);
  });
  return text.split('\n')[0]!.replace(/\r$/, '');
}

/** Decrypts the key in `file`; a wrong passphrase or a file that is no such key is a usage error. */
export async function readCosignPrivateKey(file: string, passphrase: string): Promise<crypto.KeyObject> {
  const text = await fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`private key ${file}: ${error.code ?? error.message}`);
  });
  const pem = PEM.exec(text);
  if (!pem) throw new UsageError(`private key ${file}: not an encrypted cosign/sigstore private key`);
  let sealed: z.infer<typeof EncryptedKeySchema>;
  try {
    sealed = EncryptedKeySchema.parse(
      JSON.parse(Buffer.from(pem[1]!.replace(/\s+/g, ''), 'base64').toString()),
    );
  } catch {
    throw new UsageError(`private key ${file}: the encrypted key document is not as cosign writes it`);
  }
  const { N, r, p } = sealed.kdf.params;
  const key = await scrypt(passphrase, Buffer.from(sealed.kdf.salt, 'base64'), 32, {
    N,
    r,
    p,
    maxmem: 256 * N * r + (1 << 20),
  });
  const nonce = Buffer.from(sealed.cipher.nonce, 'base64');
  if (nonce.length !== nacl.secretbox.nonceLength)
    throw new UsageError(
      `private key ${file}: its nonce is ${nonce.length} bytes, not ${nacl.secretbox.nonceLength}`,
    );
  // NaCl secretbox (XSalsa20-Poly1305), as cosign seals its keys: tweetnacl's, not our own.
  const opened = nacl.secretbox.open(Buffer.from(sealed.ciphertext, 'base64'), nonce, key);
  const plain = opened ? Buffer.from(opened) : undefined;
  if (!plain) throw new UsageError(`private key ${file}: wrong passphrase (the key does not decrypt)`);
  try {
    return crypto.createPrivateKey({ key: plain, format: 'der', type: 'pkcs8' });
  } catch {
    throw new UsageError(`private key ${file}: decrypted, but not a PKCS#8 private key`);
  }
}
