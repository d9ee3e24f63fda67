/**
 * The writing side of ocicrypt's JWE key wrapping (`mirror --encryption-key jwe:PUB.pem`). Facts
 * checked against containers/ocicrypt (encryption.go, blockcipher/) and skopeo's own output
 * (fixtures/images/encrypted-*):
 *
 * - The layer key, nonce and the plaintext blob's digest go into the "private options" JSON
 *   `{"symkey", "digest", "cipheroptions": {"nonce"}}` (Go []byte as padded base64).
 * - That JSON is the plaintext of ONE JWE addressed to every recipient, `enc` A256GCM, `alg`
 *   RSA-OAEP for RSA keys and ECDH-ES+A256KW for EC keys. go-jose serializes one recipient
 *   flattened (alg in the protected header) and several in general form (alg per recipient): so do we.
 * - The JWE JSON, base64 (standard, padded), is the `org.opencontainers.image.enc.keys.jwe` value;
 *   `org.opencontainers.image.enc.pubopts` is base64 `{"cipher", "hmac", "cipheroptions": {}}`.
 */
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FlattenedEncrypt, GeneralEncrypt } from 'jose';
import type { Digest } from '../../digest/index.js';
import { UsageError } from '../../errors/index.js';
import { ENC_KEYS_JWE, ENC_PUBOPTS } from './annotations.js';
import { AES_256_CTR_HMAC_SHA256 } from './unwrap.js';

export interface EncryptionKey {
  /** The key file, for messages. */
  path: string;
  key: KeyObject;
  /** The JWE key-management algorithm ocicrypt uses for this key type. */
  algorithm: 'RSA-OAEP' | 'ECDH-ES+A256KW';
}

/** What one encrypted layer needs wrapped: its key material and the digest of the blob it encrypted. */
export interface LayerSecrets {
  symKey: Buffer;
  nonce: Buffer;
  hmac: Buffer;
  plainDigest: Digest;
}

const CONTENT_ENCRYPTION = 'A256GCM';
/** The curves go-jose's ECDH-ES takes from an ECDSA public key. */
const EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** `jwe:FILE` for each recipient, as skopeo's --encryption-key; the other ocicrypt schemes are refused. */
export async function loadEncryptionKeys(specs: string[]): Promise<EncryptionKey[]> {
  const keys: EncryptionKey[] = [];
  for (const spec of specs) keys.push(await loadEncryptionKey(spec));
  return keys;
}

async function loadEncryptionKey(spec: string): Promise<EncryptionKey> {
  const colon = spec.indexOf(':');
  const scheme = colon > 0 ? spec.slice(0, colon) : '';
  if (scheme !== 'jwe') {
    throw new UsageError(
      `--encryption-key ${spec}: give jwe:PUBLIC_KEY_FILE (skiff encrypts for jwe recipients only)`,
    );
  }
  const path = spec.slice(colon + 1);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`cannot read encryption key ${path} (${code})`, { path });
  }
  const key = parsePublicKey(data, path);
  return { path, key, algorithm: algorithmFor(key, path) };
}

/** A PEM or DER public key, an X.509 certificate, a JWK, or a private key (its public half is used). */
function parsePublicKey(data: Buffer, path: string): KeyObject {
  const text = data.toString('latin1');
  try {
    if (text.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(data).publicKey;
    if (text.trimStart().startsWith('{'))
      return createPublicKey({ key: JSON.parse(text) as import('node:crypto').JsonWebKey, format: 'jwk' });
    if (text.includes('-----BEGIN')) return createPublicKey(data);
    return createPublicKey({ key: data, format: 'der', type: 'spki' });
  } catch {
    throw new UsageError(`encryption key ${path} is not a public key (PEM, DER, JWK or certificate)`, {
      path,
    });
  }
}

function algorithmFor(key: KeyObject, path: string): EncryptionKey['algorithm'] {
  if (key.asymmetricKeyType === 'rsa') return 'RSA-OAEP';
  if (key.asymmetricKeyType === 'ec' && EC_CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? ''))
    return 'ECDH-ES+A256KW';
  throw new UsageError(
    `encryption key ${path}: ${key.asymmetricKeyType ?? 'unknown'} keys cannot be JWE recipients for ocicrypt; use an RSA or EC (P-256, P-384, P-521) key`,
    { path },
  );
}

/** The two annotations an encrypted layer carries, for every recipient. */
export async function encryptionAnnotations(
  secrets: LayerSecrets,
  keys: EncryptionKey[],
): Promise<Record<string, string>> {
  if (keys.length === 0) throw new UsageError('encrypting a layer needs at least one --encryption-key');
  const privateOptions = {
    symkey: secrets.symKey.toString('base64'),
    digest: secrets.plainDigest,
    cipheroptions: { nonce: secrets.nonce.toString('base64') },
  };
  const publicOptions = {
    cipher: AES_256_CTR_HMAC_SHA256,
    hmac: secrets.hmac.toString('base64'),
    cipheroptions: {},
  };
  const jwe = await wrap(Buffer.from(JSON.stringify(privateOptions)), keys);
  return {
    [ENC_KEYS_JWE]: Buffer.from(JSON.stringify(jwe)).toString('base64'),
    [ENC_PUBOPTS]: Buffer.from(JSON.stringify(publicOptions)).toString('base64'),
  };
}

function wrap(plaintext: Buffer, keys: EncryptionKey[]): Promise<object> {
  const [only] = keys;
  if (only && keys.length === 1) {
    return new FlattenedEncrypt(plaintext)
      .setProtectedHeader({ alg: only.algorithm, enc: CONTENT_ENCRYPTION })
      .encrypt(only.key);
  }
  const jwe = new GeneralEncrypt(plaintext).setProtectedHeader({ enc: CONTENT_ENCRYPTION });
  for (const { key, algorithm } of keys) jwe.addRecipient(key).setUnprotectedHeader({ alg: algorithm });
  return jwe.encrypt();
}
