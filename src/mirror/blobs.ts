/**
 * Moving one blob to the destination: skipped when it is already there (HEAD), mounted when the
 * registry can link it from the source repository, otherwise streamed from source to destination
 * through a digest check, never held whole in memory. A streamed body cannot be replayed, so a
 * network failure retries the whole blob by reopening the source.
 */
import { pipeline, type Readable, type TransformCallback } from 'node:stream';
import type { BlobLedger } from '../copy/ledger.js';
import { type Digest, DigestStream } from '../digest/index.js';
import { NetworkError, SkiffError, StallError } from '../errors/index.js';
import type { RegistryReference } from '../reference/index.js';
import { isRetriableNetworkError } from '../registry/http.js';
import type { AttemptProgress, RetryOptions } from '../registry/retry.js';
import { type BlobFacts, decideBlob } from '../strategy/copy.js';
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
  /** The run-wide record of blobs placed at registry destinations (mirror --file). */
  ledger?: BlobLedger | undefined;
  /**
   * Runs one attempt at a transfer of this many bytes holding a connection to the destination for
   * its uploads (`ConnectionBudget.transfer`, registry/budget.ts); absent: run as it is.
   */
  transferSlot?: (<T>(bytes: number, run: () => Promise<T>) => Promise<T>) | undefined;
}

export interface BlobOutcome {
  outcome: 'copied' | 'skipped' | 'mounted';
  /** Bytes written to the destination. */
  bytes: number;
}

/**
 * Moves one blob as the strategy module decides (skip, mount or copy), asking it again when the
 * run reveals a fact (the registry declined the mount). With a run-wide ledger, a blob another
 * item of the run has placed in this repository is skipped (waiting for it if it is on its way),
 * and one placed in another repository of this registry is mounted from there.
 */
export async function transferBlob(job: BlobJob, env: TransferEnv): Promise<BlobOutcome> {
  const where = env.ledger && env.dst.reference.transport === 'docker' ? env.dst.reference : undefined;
  if (!where) return decideAndMove(job, env, false);
  const ledger = env.ledger!;
  // Checked and claimed in one synchronous step, so two items cannot both find it unclaimed.
  for (
    let earlier = ledger.placement(where, job.digest);
    earlier;
    earlier = ledger.placement(where, job.digest)
  )
    if (await earlier) return decideAndMove(job, env, true);
  const settle = ledger.begin(where, job.digest);
  let placed = false;
  try {
    const mountFrom = sameRegistry(job.mountFrom, where)
      ? job.mountFrom
      : ((await ledger.mountSource(where, job.digest)) ?? job.mountFrom);
    const outcome = await decideAndMove({ ...job, mountFrom }, env, false);
    placed = true;
    return outcome;
  } finally {
    settle(placed);
  }
}

async function decideAndMove(job: BlobJob, env: TransferEnv, placedThisRun: boolean): Promise<BlobOutcome> {
  const { traits } = env.dst;
  const facts: BlobFacts = {
    present:
      !placedThisRun && traits.existingBlobCheck ? await env.dst.hasBlob(job.digest, job.size) : undefined,
    placedThisRun,
    // Only a repository of the destination's own registry can lend a blob.
    mountCandidate:
      job.mountFrom !== undefined &&
      (env.dst.reference.transport !== 'docker' || sameRegistry(job.mountFrom, env.dst.reference)),
    blobMount: traits.blobMount && env.dst.mountBlob !== undefined,
  };
  for (let decision = decideBlob(facts); ; decision = decideBlob(facts)) {
    if (decision.action === 'skip') return { outcome: 'skipped', bytes: 0 };
    if (decision.action === 'copy') return { outcome: 'copied', bytes: await uploadWithRetries(job, env) };
    if (await env.dst.mountBlob!(job.digest, job.mountFrom!)) return { outcome: 'mounted', bytes: 0 };
    facts.mountDeclined = true;
  }
}

function sameRegistry(from: RegistryReference | undefined, where: RegistryReference): boolean {
  return from !== undefined && from.endpoint === where.endpoint;
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
    (progress) => {
      const attempt = () => uploadOnce(job, env, progress);
      return env.transferSlot ? env.transferSlot(job.size ?? 0, attempt) : attempt();
    },
  );
}

async function uploadOnce(job: BlobJob, env: TransferEnv, progress: AttemptProgress): Promise<number> {
  let sent = 0;
  const verify = new CountingDigestStream(
    { digest: job.digest, ...(job.size === undefined ? {} : { size: job.size }), what: `blob ${job.digest}` },
    (n) => {
      sent += n;
      progress.progressed();
      env.onBytes(n);
    },
  );
  let body: Readable | undefined;
  try {
    const raw = await job.open(env.signal);
    body = pipeline(raw, verify, () => {});
    await env.dst.putBlob({ digest: job.digest, size: job.size }, body, env.signal);
    if (verify.errored) throw verify.errored;
    return sent;
  } catch (error) {
    body?.destroy();
    // The digest check's verdict wins over whatever the aborted request reported.
    throw verify.errored ?? error;
  }
}

/**
 * The digest check that also counts what passed it: one stream step per chunk between the source's
 * body and the upload instead of two (every chunk of every blob of a mirror run takes it).
 */
class CountingDigestStream extends DigestStream {
  constructor(
    expected: ConstructorParameters<typeof DigestStream>[0],
    private readonly onBytes: (n: number) => void,
  ) {
    super(expected);
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, done: TransformCallback): void {
    super._transform(chunk, encoding, (error, data) => {
      if (!error) this.onBytes(chunk.length);
      done(error, data);
    });
  }
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
