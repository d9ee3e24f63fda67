import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { UsageError, VerificationError } from '../errors/index.js';

/** A content digest. skiff only produces and trusts sha256; other algorithms are refused at the boundary. */
export type Digest = `sha256:${string}`;

const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_PATTERN.test(value);
}

/** Validates a digest read from outside (a flag, a manifest, a TOC); `what` names it in the error. */
export function parseDigest(value: string, what = 'digest'): Digest {
  if (isDigest(value)) return value;
  if (/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(value) && !value.startsWith('sha256:')) {
    throw new UsageError(`${what} ${value}: only sha256 digests are supported`);
  }
  throw new UsageError(`${what} ${JSON.stringify(value)} is not a valid sha256 digest`);
}

/** The hex part, which names files in the store and in layouts: anything else is refused, not joined. */
export function hexOf(digest: Digest): string {
  if (!isDigest(digest)) throw new VerificationError(`${JSON.stringify(digest)} is not a sha256 digest`);
  return digest.slice('sha256:'.length);
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** An incremental sha256 that also counts bytes. */
export class Hasher {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  update(chunk: Uint8Array): this {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    return this;
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/**
 * A pass-through stream that hashes what flows through it and, when `expected` is given, fails the
 * stream at its end if the content does not match, so nothing downstream can treat unverified bytes
 * as final.
 */
export class DigestStream extends Transform {
  private readonly hasher = new Hasher();
  private result: Digest | undefined;

  constructor(private readonly expected?: { digest: Digest; size?: number; what: string }) {
    super();
  }

  get bytes(): number {
    return this.hasher.bytes;
  }

  /** The digest of everything that passed; only available once the stream has ended. */
  get digest(): Digest {
    if (!this.result) throw new Error('DigestStream: digest read before the end of the stream');
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hasher.update(chunk);
    const limit = this.expected?.size;
    if (limit !== undefined && this.hasher.bytes > limit) {
      done(
        new VerificationError(
          `${this.expected?.what} does not match its digest: more than its declared ${limit} bytes`,
          {
            digest: this.expected?.digest,
          },
        ),
      );
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.result = this.hasher.digest();
    const expected = this.expected;
    if (expected) {
      if (expected.size !== undefined && this.hasher.bytes !== expected.size) {
        done(
          new VerificationError(
            `${expected.what} does not match its digest: ${this.hasher.bytes} bytes where ${expected.size} were declared`,
            {
              digest: expected.digest,
            },
          ),
        );
        return;
      }
      if (this.result !== expected.digest) {
        done(
          new VerificationError(
            `${expected.what} digest mismatch: expected ${expected.digest}, got ${this.result}`,
            {
              digest: expected.digest,
            },
          ),
        );
        return;
      }
    }
    done();
  }
}

/** Throws a VerificationError unless `actual` equals `expected`. */
export function assertDigest(actual: Digest, expected: Digest, what: string): void {
  if (actual !== expected) {
    throw new VerificationError(`${what} digest mismatch: expected ${expected}, got ${actual}`, {
      digest: expected,
    });
  }
}
