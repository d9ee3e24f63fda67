/**
 * Moving one blob to the destination: skipped when it is already there (HEAD), mounted when the
 * registry can link it from the source repository, otherwise streamed from source to destination
 * through a digest check, never held whole in memory. A streamed body cannot be replayed, so a
 * network failure retries the whole blob by reopening the source.
 */
import { pipeline, type Readable } from 'node:stream';
import { type Digest, DigestStream } from '../digest/index.js';
import { NetworkError, SkiffError, StallError } from '../errors/index.js';
import { ByteCounter } from '../pull/progress.js';
import type { RegistryReference } from '../reference/index.js';
import { isRetriableNetworkError } from '../registry/http.js';
import type { AttemptProgress, RetryOptions } from '../registry/retry.js';
import type { ImageDestination } from '../transport/index.js';

export interface BlobJob {
  digest: Digest;
  size?: number | undefined;
  /** Opens the blob's bytes (unverified: they are checked here); called again for each attempt. */
  open(signal?: AbortSignal): Promise<Readable>;
  /** A repository on the destination's registry that holds the blob, to mount it from. */
  mountFrom?: RegistryReference | undefined;
}

export interface TransferEnv {
  dst: ImageDestination;
  /** Runs one blob's transfer under the client's retry policy (`HttpClient.retrying`). */
  retrying<T>(options: RetryOptions, operation: (progress: AttemptProgress) => Promise<T>): Promise<T>;
  /** A transfer of this many bytes (0 if unknown) starts. */
  onStart(bytes: number): void;
  onBytes(bytes: number): void;
  signal?: AbortSignal | undefined;
}

export interface BlobOutcome {
  outcome: 'copied' | 'skipped' | 'mounted';
  /** Bytes written to the destination. */
  bytes: number;
}

export async function transferBlob(job: BlobJob, env: TransferEnv): Promise<BlobOutcome> {
  if (await env.dst.hasBlob(job.digest, job.size)) return { outcome: 'skipped', bytes: 0 };
  if (job.mountFrom && env.dst.mountBlob && (await env.dst.mountBlob(job.digest, job.mountFrom)))
    return { outcome: 'mounted', bytes: 0 };
  return { outcome: 'copied', bytes: await uploadWithRetries(job, env) };
}

/** Streams the blob into the destination; returns the bytes sent by the attempt that succeeded. */
export async function uploadWithRetries(job: BlobJob, env: TransferEnv): Promise<number> {
  env.onStart(job.size ?? 0);
  return env.retrying(
    {
      signal: env.signal,
      step: (cause) => ({
        digest: job.digest,
        reason: `copying blob ${job.digest} failed (${cause instanceof SkiffError ? cause.oneLine() : (cause as Error).message})`,
        retriable,
        final: (e) => withDigest(e, job.digest),
      }),
    },
    async (progress) => {
      const verify = new DigestStream({
        digest: job.digest,
        ...(job.size === undefined ? {} : { size: job.size }),
        what: `blob ${job.digest}`,
      });
      let sent = 0;
      let body: Readable | undefined;
      try {
        const raw = await job.open(env.signal);
        const counter = new ByteCounter((n) => {
          sent += n;
          progress.progressed();
          env.onBytes(n);
        });
        body = pipeline(raw, verify, counter, () => {});
        await env.dst.putBlob({ digest: job.digest, size: job.size }, body, env.signal);
        if (verify.errored) throw verify.errored;
        return sent;
      } catch (error) {
        body?.destroy();
        // The digest check's verdict wins over whatever the aborted request reported.
        throw verify.errored ?? error;
      }
    },
  );
}

/** A whole blob is copied again after a network failure, but not after a stall: that is final. */
function retriable(error: unknown): boolean {
  if (error instanceof StallError) return false;
  if (error instanceof SkiffError) return error instanceof NetworkError;
  return isRetriableNetworkError(error);
}

function withDigest(error: unknown, digest: Digest): unknown {
  return error instanceof SkiffError ? error.withContext({ digest }) : error;
}
