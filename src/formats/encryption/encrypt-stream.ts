/**
 * Streaming encryption of a layer body, the inverse of stream.ts: AES-256-CTR under a fresh random
 * 32-byte key with a random 16-byte nonce as the initial counter block, and HMAC-SHA256 (keyed
 * with the same key) over the ciphertext, as ocicrypt's AES_256_CTR_HMAC_SHA256 does. The HMAC is
 * only known once the last byte went through: `secrets()` is for after a clean end.
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

const KEY_BYTES = 32;
const NONCE_BYTES = 16;

export class EncryptStream extends Transform {
  private readonly symKey = randomBytes(KEY_BYTES);
  private readonly nonce = randomBytes(NONCE_BYTES);
  private readonly cipher = createCipheriv('aes-256-ctr', this.symKey, this.nonce);
  private readonly hmac = createHmac('sha256', this.symKey);
  private mac: Buffer | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const encrypted = this.cipher.update(chunk);
    this.hmac.update(encrypted);
    done(null, encrypted);
  }

  override _flush(done: TransformCallback): void {
    const tail = this.cipher.final(); // CTR has no padding: empty, but it releases the context.
    this.hmac.update(tail);
    this.mac = this.hmac.digest();
    done(null, tail.length > 0 ? tail : undefined);
  }

  /** The key, nonce and HMAC, once the stream has ended. */
  secrets(): { symKey: Buffer; nonce: Buffer; hmac: Buffer } {
    if (!this.mac) throw new Error('EncryptStream: secrets() before the stream ended');
    return { symKey: this.symKey, nonce: this.nonce, hmac: this.mac };
  }
}
