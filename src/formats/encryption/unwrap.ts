/**
 * Unwrapping a layer's symmetric key: every given key is tried against every JWE recipient (jose's
 * generalDecrypt does the recipients), the first that decrypts wins, as in ocicrypt.
 */
import { type GeneralJWE, generalDecrypt } from 'jose';
import { VerificationError } from '../../errors/index.js';
import {
  describeRecipients,
  ENC_KEYS_JWE,
  ENC_PUBOPTS,
  keySchemes,
  type ParsedJwe,
  type PrivateOptions,
  type PublicOptions,
  parseJweAnnotation,
  parsePrivateOptions,
  parsePublicOptions,
} from './annotations.js';
import type { DecryptionKey } from './keys.js';

/** The only layer cipher ocicrypt defines. */
export const AES_256_CTR_HMAC_SHA256 = 'AES_256_CTR_HMAC_SHA256';
const KEY_BYTES = 32;
const NONCE_BYTES = 16;
const HMAC_BYTES = 32;

export interface LayerKey {
  symKey: Buffer;
  nonce: Buffer;
  cipher: string;
  /** The expected HMAC-SHA256 (keyed with symKey) of the whole ciphertext. */
  hmac: Buffer;
  /**
   * The digest of the blob before encryption (ocicrypt's private `digest`), when the writer recorded
   * it. Informative: the caller's DiffID check is what binds the content.
   */
  plainDigest?: string;
}

/**
 * What key management and content encryption a layer key may use. Asymmetric only (the keys are
 * files holding private keys), no RSA1_5 (padding oracle) and no PBES2 (unbounded work).
 */
const DECRYPT_OPTIONS = {
  keyManagementAlgorithms: [
    'RSA-OAEP',
    'RSA-OAEP-256',
    'RSA-OAEP-384',
    'RSA-OAEP-512',
    'ECDH-ES',
    'ECDH-ES+A128KW',
    'ECDH-ES+A192KW',
    'ECDH-ES+A256KW',
  ],
  contentEncryptionAlgorithms: [
    'A128GCM',
    'A192GCM',
    'A256GCM',
    'A128CBC-HS256',
    'A192CBC-HS384',
    'A256CBC-HS512',
  ],
};

export async function unwrapLayerKey(
  annotations: Record<string, string>,
  keys: DecryptionKey[],
): Promise<LayerKey> {
  const jwes = jweRecipients(annotations);
  const publicOptions = readPublicOptions(annotations);
  const recipients = describeRecipients(jwes.flatMap((parsed) => parsed.recipients));
  if (keys.length === 0) {
    throw new VerificationError(
      `layer is encrypted: a --decryption-key is needed (recipients: ${recipients})`,
    );
  }
  const plaintext = await tryKeys(jwes, keys);
  if (!plaintext)
    throw new VerificationError(`no decryption key fits this layer (recipients: ${recipients})`);
  return layerKeyFrom(publicOptions, parsePrivateOptions(plaintext));
}

function jweRecipients(annotations: Record<string, string>): ParsedJwe[] {
  const value = annotations[ENC_KEYS_JWE];
  if (value) return parseJweAnnotation(value);
  const schemes = keySchemes(annotations);
  const which = schemes.length > 0 ? `only for ${schemes.join(', ')} keys` : 'without any wrapped keys';
  throw new VerificationError(`layer is encrypted ${which}; skiff decrypts jwe recipients only`);
}

function readPublicOptions(annotations: Record<string, string>): PublicOptions {
  const value = annotations[ENC_PUBOPTS];
  if (!value) throw new VerificationError(`encrypted layer has no ${ENC_PUBOPTS} annotation`);
  const options = parsePublicOptions(value);
  if (options.cipher !== AES_256_CTR_HMAC_SHA256) {
    throw new VerificationError(`unsupported layer cipher ${JSON.stringify(options.cipher)}`);
  }
  return options;
}

async function tryKeys(jwes: ParsedJwe[], keys: DecryptionKey[]): Promise<Uint8Array | undefined> {
  for (const { jwe } of jwes) {
    for (const { key } of keys) {
      try {
        const { plaintext } = await generalDecrypt(jwe as GeneralJWE, key, DECRYPT_OPTIONS);
        return plaintext;
      } catch {
        // Wrong key for every recipient of this JWE (or a key type no recipient uses): try the next.
      }
    }
  }
  return undefined;
}

/** ocicrypt looks cipher options up in the public options first, then the private ones. */
function layerKeyFrom(pub: PublicOptions, priv: PrivateOptions): LayerKey {
  const symKey = sized(priv.symkey, KEY_BYTES, 'symmetric key');
  const nonce = sized(agreedOption('nonce', pub, priv), NONCE_BYTES, 'nonce');
  const hmac = sized(pub.hmac ?? agreedOption('hmac', pub, priv), HMAC_BYTES, 'HMAC');
  const layerKey: LayerKey = { symKey, nonce, cipher: pub.cipher, hmac };
  if (priv.digest) layerKey.plainDigest = priv.digest;
  return layerKey;
}

/** One option from either side; both present and different means a tampered or broken layer. */
function agreedOption(name: string, pub: PublicOptions, priv: PrivateOptions): Buffer | undefined {
  const fromPublic = pub.cipheroptions[name];
  const fromPrivate = priv.cipheroptions[name];
  if (fromPublic && fromPrivate && !fromPublic.equals(fromPrivate)) {
    throw new VerificationError(`the encrypted layer's public and private ${name} disagree`);
  }
  return fromPublic ?? fromPrivate;
}

function sized(value: Buffer | undefined, length: number, what: string): Buffer {
  if (!value) throw new VerificationError(`the encrypted layer's ${what} is missing`);
  if (value.length !== length) {
    throw new VerificationError(
      `the encrypted layer's ${what} has ${value.length} bytes, expected ${length}`,
    );
  }
  return value;
}
