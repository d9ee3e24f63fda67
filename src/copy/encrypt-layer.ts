/**
 * The `encrypt` layer conversion of a copy (mirror --encryption-key): the source blob, verified
 * against its digest as it streams, goes through AES-256-CTR into a temporary file whose digest
 * names the new blob; then the layer key is wrapped for every recipient. Memory stays bounded
 * (stream buffers only); the file lets the upload name the blob up front and be retried.
 * The blob keeps its compression, so the config's DiffIDs (of the plaintext tars) stay true.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, DigestStream } from '../digest/index.js';
import { SkiffError } from '../errors/index.js';
import {
  type EncryptionKey,
  EncryptStream,
  encryptedMediaType,
  encryptionAnnotations,
} from '../formats/encryption/index.js';
import type { Descriptor } from '../manifest/index.js';
import { keptAnnotations, ociMediaType } from '../mirror/layers.js';

export interface EncryptedLayer {
  /** The ciphertext, for the caller to upload and remove. */
  file: string;
  descriptor: Descriptor;
}

export async function encryptLayer(
  layer: Descriptor,
  open: (signal?: AbortSignal) => Promise<Readable>,
  keys: EncryptionKey[],
  dir: string,
  signal?: AbortSignal,
): Promise<EncryptedLayer> {
  const file = path.join(dir, `${layer.digest.slice(7, 23)}-encrypted`);
  try {
    const verify = new DigestStream({
      digest: layer.digest,
      size: layer.size,
      what: `layer ${layer.digest}`,
    });
    const encrypt = new EncryptStream();
    const out = new DigestStream();
    await pipeline(await open(signal), verify, encrypt, out, fs.createWriteStream(file), { signal });
    const annotations = await encryptionAnnotations(
      { ...encrypt.secrets(), plainDigest: layer.digest as Digest },
      keys,
    );
    return {
      file,
      descriptor: {
        mediaType: encryptedMediaType(ociMediaType(layer.mediaType)),
        digest: out.digest,
        size: out.bytes,
        annotations: { ...keptAnnotations(layer.annotations), ...annotations },
      },
    };
  } catch (error) {
    await fs.promises.rm(file, { force: true });
    throw error instanceof SkiffError ? error.withContext({ digest: layer.digest }) : error;
  }
}
