/**
 * Loading `--decryption-key` private keys. The spec syntax follows skopeo/ocicrypt
 * (`FILE[:PASSWORD]`, the password as `pass=P`, `file=F`, `fd=N` or literal) and also accepts the
 * `jwe:` prefix skiff documents. Key formats: PEM (PKCS#1, PKCS#8, SEC1, encrypted legacy or PKCS#8),
 * DER and JWK, RSA or EC (X25519/X448 too, which JWE can address with ECDH-ES).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { UsageError } from '../../errors/index.js';

export interface DecryptionKey {
  /** The key file, for messages; never the password. */
  path: string;
  key: KeyObject;
}

/** Schemes skopeo's --encryption-key knows but skiff does not decrypt. */
const OTHER_SCHEMES = ['pgp:', 'pkcs7:', 'pkcs11:', 'provider:'];
const USABLE_KEY_TYPES = new Set(['rsa', 'ec', 'x25519', 'x448']);

export async function loadDecryptionKeys(specs: string[]): Promise<DecryptionKey[]> {
  const keys: DecryptionKey[] = [];
  for (const spec of specs) keys.push(await loadDecryptionKey(spec));
  return keys;
}

async function loadDecryptionKey(spec: string): Promise<DecryptionKey> {
  const { path, password } = await splitSpec(spec);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`cannot read decryption key ${path} (${code})`, { path });
  }
  const key = parsePrivateKey(
    data,
    path,
    password === undefined ? undefined : await readPassword(password, path),
  );
  if (!USABLE_KEY_TYPES.has(key.asymmetricKeyType ?? '')) {
    throw new UsageError(
      `decryption key ${path}: ${key.asymmetricKeyType ?? 'unknown'} keys cannot decrypt JWE; use an RSA or EC key`,
      { path },
    );
  }
  return { path, key };
}

/**
 * `[jwe:]FILE[:PASSWORD]`. A spec naming an existing file is taken whole, so paths containing ':'
 * still work; otherwise the first ':' after the file name starts the password, as in ocicrypt.
 */
async function splitSpec(spec: string): Promise<{ path: string; password?: string }> {
  if (await isFile(spec)) return { path: spec };
  if (OTHER_SCHEMES.some((scheme) => spec.startsWith(scheme))) {
    throw new UsageError(`decryption key ${spec}: only jwe keys (PEM private keys) are supported`);
  }
  const body = spec.startsWith('jwe:') ? spec.slice('jwe:'.length) : spec;
  const colon = body.indexOf(':');
  if (colon <= 0 || (await isFile(body))) return { path: body };
  return { path: body.slice(0, colon), password: body.slice(colon + 1) };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** ocicrypt's password forms; the bytes are used exactly (no newline trimming), as skopeo does. */
async function readPassword(value: string, path: string): Promise<Buffer> {
  const source = passwordSource(value);
  if (source.literal !== undefined) return Buffer.from(source.literal, 'utf8');
  try {
    return await readFile(source.file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`decryption key ${path}: cannot read its password from ${source.file} (${code})`, {
      path,
    });
  }
}

function passwordSource(
  value: string,
): { literal: string; file?: never } | { literal?: never; file: string } {
  if (value.startsWith('pass=')) return { literal: value.slice('pass='.length) };
  if (value.startsWith('file=')) return { file: value.slice('file='.length) };
  if (/^fd=\d+$/.test(value)) return { file: `/dev/fd/${value.slice('fd='.length)}` };
  return { literal: value };
}

function parsePrivateKey(data: Buffer, path: string, password: Buffer | undefined): KeyObject {
  const text = data.toString('latin1');
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return parsePem(data, text, path, password);
  if (/-----BEGIN [A-Z ]*(PUBLIC KEY|CERTIFICATE)-----/.test(text)) {
    throw new UsageError(
      `decryption key ${path} holds a public key or certificate; the private key is needed`,
      {
        path,
      },
    );
  }
  if (text.trimStart().startsWith('{')) return parseJwk(text, path);
  return parseDer(data, path);
}

function parsePem(data: Buffer, text: string, path: string, password: Buffer | undefined): KeyObject {
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,\s*ENCRYPTED/.test(text);
  if (encrypted && password === undefined) {
    throw new UsageError(`decryption key ${path} is encrypted: append :PASSWORD (or :file=PASSWORD_FILE)`, {
      path,
    });
  }
  try {
    return createPrivateKey(encrypted ? { key: data, format: 'pem', passphrase: password } : data);
  } catch {
    // Node's messages are about OpenSSL internals; the user needs to know which file and why.
    const why = encrypted ? 'wrong password, or not a private key' : 'not a valid PEM private key';
    throw new UsageError(`decryption key ${path}: ${why}`, { path });
  }
}

function parseDer(data: Buffer, path: string): KeyObject {
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: data, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  throw new UsageError(`decryption key ${path} is not a private key (PEM, DER or JWK)`, { path });
}

function parseJwk(text: string, path: string): KeyObject {
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new UsageError(`decryption key ${path} is not a private key (PEM, DER or JWK)`, { path });
  }
  if (typeof jwk !== 'object' || jwk === null || !('d' in jwk)) {
    throw new UsageError(`decryption key ${path} is a public JWK; the private key is needed`, { path });
  }
  try {
    return createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch {
    throw new UsageError(`decryption key ${path} is not a valid private JWK`, { path });
  }
}
