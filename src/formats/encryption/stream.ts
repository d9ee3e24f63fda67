/**
 * Streaming decryption of an ocicrypt layer body: AES-256-CTR with the 16-byte nonce as the initial
 * counter block, and HMAC-SHA256 keyed with the same symmetric key over the *ciphertext* (ocicrypt
 * feeds the encrypted bytes to the HMAC on both sides). The HMAC can only be checked once the last
 * byte is in, so plaintext flows out as it is produced and the stream fails at its end if the
 * ciphertext was altered or cut short: callers must treat nothing as final before a clean end.
 */
import { createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { VerificationError } from '../../errors/index.js';
import { AES_256_CTR_HMAC_SHA256, type LayerKey } from './unwrap.js';

export function createDecryptStream(layerKey: LayerKey): Transform {
  if (layerKey.cipher !== AES_256_CTR_HMAC_SHA256) {
    throw new VerificationError(`unsupported layer cipher ${JSON.stringify(layerKey.cipher)}`);
  }
  const decipher = createDecipheriv('aes-256-ctr', layerKey.symKey, layerKey.nonce);
  const hmac = createHmac('sha256', layerKey.symKey);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      hmac.update(chunk);
      done(null, decipher.update(chunk));
    },
    flush(done: TransformCallback): void {
      const tail = decipher.final(); // CTR has no padding: always empty, but it releases the context.
      const actual = hmac.digest();
      const expected = layerKey.hmac;
      if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
        done(new VerificationError('HMAC mismatch: the encrypted layer is corrupt or truncated'));
        return;
      }
      done(null, tail.length > 0 ? tail : undefined);
    },
  });
}
