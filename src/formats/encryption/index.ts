/**
 * ocicrypt-encrypted layers (docs/design.md §4 "Encrypted"): media types ending in `+encrypted`, the layer key
 * wrapped in JWEs for each recipient, the body AES-256-CTR with an HMAC-SHA256 over the ciphertext.
 * The pipeline: `readEncryptionInfo` to describe, `loadDecryptionKeys` once per run, `unwrapLayerKey`
 * per layer, then pipe the verified blob through `createDecryptStream` before decompressing.
 * Writing (mirror --encryption-key): `loadEncryptionKeys` once, the blob through an `EncryptStream`,
 * then `encryptionAnnotations` for the new descriptor.
 */
export {
  describeRecipients,
  ENC_KEYS_JWE,
  ENC_PUBOPTS,
  type EncryptionInfo,
  type Recipient,
  readEncryptionInfo,
} from './annotations.js';
export { EncryptStream } from './encrypt-stream.js';
export { type DecryptionKey, loadDecryptionKeys } from './keys.js';
export { createDecryptStream } from './stream.js';
export { AES_256_CTR_HMAC_SHA256, type LayerKey, unwrapLayerKey } from './unwrap.js';
export { type EncryptionKey, encryptionAnnotations, type LayerSecrets, loadEncryptionKeys } from './wrap.js';

const ENCRYPTED_SUFFIX = '+encrypted';

export function isEncryptedMediaType(mediaType: string): boolean {
  return mediaType.endsWith(ENCRYPTED_SUFFIX);
}

/** The media type of the layer once decrypted: `...tar+gzip+encrypted` → `...tar+gzip`. */
export function decryptedMediaType(mediaType: string): string {
  return isEncryptedMediaType(mediaType) ? mediaType.slice(0, -ENCRYPTED_SUFFIX.length) : mediaType;
}

/** The media type of a layer once encrypted: ocicrypt suffixes the (OCI) layer type. */
export function encryptedMediaType(mediaType: string): string {
  return `${mediaType}${ENCRYPTED_SUFFIX}`;
}
