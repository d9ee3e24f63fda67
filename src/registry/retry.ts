/**
 * The one retry policy of skiff's network code, run by p-retry. Requests (`HttpClient.send`),
 * resumed blob bodies (`resumingBody`), range fetches and mirror's blob uploads all call
 * `withRetries`; it decides whether a failed attempt is tried again (a retriable failure, retries
 * left, the transfer not stalled, a Retry-After the user allows), says so through the client's
 * listener (the CLI prints it on stderr), and waits: p-retry's exponential backoff with jitter,
 * or the registry's Retry-After when that is longer.
 *
 * An attempt that received new bytes before it failed (a dropped connection mid-body) does not
 * consume a retry and is resumed at once: the count of consecutive failures starts again, while a
 * total bound still stops a server that always drops after a few bytes.
 *
 * A transfer is stalled when its host has sent no new byte for the stall timeout: one read that
 * idles that long (undici's headers/body timeouts are set to it), or resumes and retries that add
 * up to it without a new byte. A stall is final (exit 5): a slow-loris server cannot hold a pull
 * for the sum of every retry's timeouts.
 */
import { PassThrough, type Readable } from 'node:stream';
import pRetry, { AbortError, type RetryContext } from 'p-retry';
import { NetworkError, SkiffError, StallError } from '../errors/index.js';
import { formatDuration, shortDigest } from '../util/present.js';

export interface RetryPolicy {
  /** Consecutive retries after a failed attempt (skopeo's --retry-times). */
  retries: number;
  /** First backoff delay; doubles each time, with jitter. */
  minDelayMs: number;
  maxDelayMs: number;
  /**
   * The longest Retry-After skiff waits (`--retry-delay-max`). A registry asking for longer ends
   * the operation with a NetworkError naming the wait, rather than parking the run for hours.
   */
  maxRetryAfterMs: number;
  /** No new byte from a host for this long ends the transfer (StallError, exit 5). */
  stallTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retries: 4,
  minDelayMs: 250,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
  stallTimeoutMs: 60_000,
};

/** One wait before a retry, as the user is told about it. */
export interface RetryNotice {
  /** What failed, e.g. `registry.example answered 503`. */
  reason: string;
  delayMs: number;
  /** The attempt about to be made, counting the first (2 for the first retry), and how many are allowed. */
  attempt: number;
  attempts: number;
}

export type RetryListener = (notice: RetryNotice) => void;

/** `registry.example answered 503; retrying in 2.0 s (attempt 2 of 5)` */
export function formatRetryNotice(notice: RetryNotice): string {
  return `${notice.reason}; retrying in ${formatDuration(notice.delayMs)} (attempt ${notice.attempt} of ${notice.attempts})`;
}

/** Statuses worth retrying: the server or a proxy may recover. Other 4xx mean "no" and are final. */
export const RETRIABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/** An HTTP status that will not get better by retrying, or a retriable one after the last retry. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly url: URL,
    readonly detail: string,
    readonly retryAfterMs?: number,
  ) {
    super(`HTTP ${status} from ${url.host}${detail ? `: ${detail}` : ''}`);
  }
}

/**
 * Failures a later attempt may not see: retriable statuses, dropped or refused connections. A
 * TypeError is a bug, not a network failure (p-retry never retries one either): skiff's HTTP
 * client is undici's request API, whose network failures carry codes.
 */
export function isRetriableNetworkError(error: unknown): boolean {
  if (error instanceof HttpStatusError) return RETRIABLE_STATUS.has(error.status);
  if (error instanceof SkiffError) return false;
  const code = errorCode(error);
  if (code === 'UND_ERR_ABORTED' || (error as Error | undefined)?.name === 'AbortError') return false;
  return (
    code.startsWith('UND_ERR_') ||
    [
      'ECONNRESET',
      'ECONNREFUSED',
      'EPIPE',
      'ETIMEDOUT',
      'EAI_AGAIN',
      'ENOTFOUND',
      'EHOSTUNREACH',
      'ENETUNREACH',
    ].includes(code)
  );
}

/** undici's per-read timeouts, which the HTTP client sets to the stall timeout. */
export function isIdleTimeout(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/** How one operation's failures are described and judged. */
export interface RetryStep {
  /** The host the failed attempt talked to (after redirects), named in notices and stall errors. */
  host?: string | undefined;
  /** The blob concerned, for a stall error's context. */
  digest?: string | undefined;
  /** Overrides the notice's description of the failure. */
  reason?: string | undefined;
  /** Overrides which failures are worth another attempt (default: isRetriableNetworkError). */
  retriable?: ((error: unknown) => boolean) | undefined;
  /** The error to throw when the failure is final (default: the failure itself). */
  final?: ((error: unknown) => unknown) | undefined;
}

export interface RetryOptions {
  signal?: AbortSignal | undefined;
  /**
   * Bounds all failures, progress or not. Default: four times the policy's retries, so an
   * operation that keeps making a little progress still ends.
   */
  maxFailures?: number | undefined;
  /**
   * The operation receives bytes and reports them with progressed(): then failures that add up to
   * the stall timeout without a new byte are a stall too. Off for requests (an upload sends for a
   * long time without receiving a byte), where only undici's idle timeouts mean a stall.
   */
  watchesBytes?: boolean | undefined;
  /** Describes a failure: a fixed step, or one computed from the attempt that failed. */
  step?: RetryStep | ((error: unknown) => RetryStep) | undefined;
}

/** What an attempt may tell the policy: new bytes arrived. */
export interface AttemptProgress {
  progressed(): void;
}

/** The client's side of the policy: its settings and where notices go. */
export interface RetrySettings {
  policy: RetryPolicy;
  onRetry?: RetryListener | undefined;
}

/**
 * Runs `operation` under the policy: retried by p-retry while the failure is retriable, retries
 * are left and the host is not stalled; the final failure is `step.final(error)`.
 */
export function withRetries<T>(
  settings: RetrySettings,
  options: RetryOptions,
  operation: (progress: AttemptProgress) => Promise<T>,
): Promise<T> {
  const { policy, onRetry } = settings;
  const maxFailures = options.maxFailures ?? Math.max(1, policy.retries) * 4;
  const stepFor = (error: unknown): RetryStep =>
    typeof options.step === 'function' ? options.step(error) : (options.step ?? {});
  let lastProgressAt = Date.now();
  let progressedThisAttempt = false;
  let consecutive = 0;
  let total = 0;
  /** The wait a failure asked for (Retry-After), decided before the notice is printed. */
  let asked = 0;
  const progress: AttemptProgress = {
    progressed() {
      progressedThisAttempt = true;
      lastProgressAt = Date.now();
    },
  };

  /** Decides about a failed attempt: throws the final error, or says whether it consumes a retry. */
  const decide = ({ error }: RetryContext): boolean => {
    const step = stepFor(error);
    const retriable = (step.retriable ?? isRetriableNetworkError)(error);
    if (progressedThisAttempt) consecutive = 0;
    const stalled =
      isIdleTimeout(error) || (options.watchesBytes && Date.now() - lastProgressAt >= policy.stallTimeoutMs);
    if (retriable && stalled) {
      throw new StallError(
        step.host ?? 'the server',
        policy.stallTimeoutMs,
        step.digest ? { digest: step.digest } : {},
        error,
      );
    }
    const final = step.final ?? same;
    if (!retriable) throw final(error);
    // A wait longer than the user allows is said as such, even when no retry is left anyway.
    asked = retryAfterOf(error, policy.maxRetryAfterMs);
    if (consecutive >= policy.retries || total >= maxFailures) throw final(error);
    consecutive++;
    total++;
    return !progressedThisAttempt;
  };

  return pRetry(
    () => {
      progressedThisAttempt = false;
      return operation(progress);
    },
    {
      retries: maxFailures,
      minTimeout: policy.minDelayMs,
      maxTimeout: policy.maxDelayMs,
      factor: 2,
      randomize: true,
      signal: options.signal,
      // A decision that throws ends the retries with that error (p-retry's contract).
      shouldConsumeRetry: (context) => decide(context),
      onFailedAttempt: async (context) => {
        const step = stepFor(context.error);
        // A Retry-After is a floor for the wait: p-retry sleeps its backoff after this returns.
        const delayMs = Math.max(context.retryDelay, asked);
        onRetry?.({
          reason: step.reason ?? describeFailure(context.error, step),
          delayMs,
          attempt: consecutive + 1,
          attempts: policy.retries + 1,
        });
        if (delayMs > context.retryDelay) await sleep(delayMs - context.retryDelay, options.signal);
      },
    },
  );
}

const same = (error: unknown) => error;

/** The wait a retriable status asked for; beyond what the user allows, a final NetworkError. */
function retryAfterOf(error: unknown, maxMs: number): number {
  if (!(error instanceof HttpStatusError) || error.retryAfterMs === undefined) return 0;
  if (error.retryAfterMs > maxMs) {
    throw new NetworkError(
      `registry ${error.url.host} answered ${error.status} and asked to wait ${formatWait(error.retryAfterMs)} before retrying (Retry-After), longer than --retry-delay-max ${formatWait(maxMs)}: try again later or allow the wait with --retry-delay-max`,
      {},
      error,
    );
  }
  return error.retryAfterMs;
}

/** `45 s`, `2 min 5 s`, `1 h 30 min`. */
export function formatWait(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min${seconds % 60 ? ` ${seconds % 60} s` : ''}`;
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
}

function describeFailure(error: unknown, step: RetryStep): string {
  const about = step.digest ? ` (blob ${shortDigest(step.digest)})` : '';
  if (error instanceof HttpStatusError) return `${error.url.host} answered ${error.status}${about}`;
  if (error instanceof SkiffError) return error.oneLine();
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return `connection to ${step.host ?? 'the server'} failed${about}: ${code && !message.includes(code) ? `${code} ` : ''}${message}`;
}

/** A response whose body can be read, as the HTTP client returns it. */
export interface BodyResponse {
  status: number;
  url: URL;
  body: AsyncIterable<Buffer> & { destroyed: boolean; destroy(): void };
}

export interface ResumingRead {
  /** The blob being read, named in notices and errors. */
  digest: string;
  /** The first answer; its body starts at `base` in the blob. */
  first: BodyResponse;
  base: number;
  /** Asks again from `offset` (Range); a 200 answer restarts from byte 0 and is skipped ahead. */
  reopen(offset: number, signal: AbortSignal): Promise<BodyResponse>;
  signal?: AbortSignal | undefined;
}

/**
 * A blob body that resumes where it stopped: when the connection drops mid-body, the rest is asked
 * for again from the offset reached, so a reset costs a retry, not the whole layer. Backpressure
 * holds: the next chunk is read only when the consumer has room.
 */
export function resumingBody(settings: RetrySettings, read: ResumingRead): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // A consumer that goes away (destroys the stream) stops the reads and the retries.
  const gone = new AbortController();
  out.once('close', () => gone.abort(new Error('blob stream closed')));
  const signal = read.signal ? AbortSignal.any([read.signal, gone.signal]) : gone.signal;
  let delivered = 0;
  let next: BodyResponse | undefined = read.first;
  let current = read.first;
  let host = read.first.url.host;
  // The body being read may be waiting for the network: stop it too.
  gone.signal.addEventListener('abort', () => current.body.destroy(), { once: true });
  const reading = withRetries(
    settings,
    {
      signal,
      watchesBytes: true,
      step: (error) => ({
        host,
        digest: read.digest,
        reason: `connection to ${host} failed after ${delivered} bytes of blob ${shortDigest(read.digest)} (${(error as Error).message})`,
        final: (cause) =>
          cause instanceof SkiffError
            ? cause
            : new NetworkError(
                `blob ${read.digest}: connection failed after ${delivered} bytes: ${(cause as Error).message}`,
                { digest: read.digest },
                cause,
              ),
      }),
    },
    async (progress) => {
      const res = next ?? (await read.reopen(read.base + delivered, signal));
      next = undefined;
      current = res;
      host = res.url.host;
      // A 200 to a resume means the server restarted from byte 0: skip what was already delivered.
      let skip = res.status === 200 && res !== read.first ? read.base + delivered : 0;
      try {
        for await (const chunk of res.body) {
          let piece = chunk;
          if (skip > 0) {
            const drop = Math.min(skip, piece.length);
            skip -= drop;
            piece = piece.subarray(drop);
            if (piece.length === 0) continue;
          }
          delivered += piece.length;
          progress.progressed();
          if (!out.write(piece)) await drained(out);
        }
      } finally {
        if (!res.body.destroyed) res.body.destroy();
      }
    },
  );
  reading.then(
    () => out.end(),
    (error: unknown) => out.destroy(error as Error),
  );
  return out;
}

/**
 * Resolves when `out` wants more, or throws (not retried) when its consumer went away. Both
 * listeners go when either fires: a race of two `once`s left the loser's listeners on the stream,
 * one 'close' and one 'error' per wait, piling up for as long as the blob was read (and each
 * removal scanning them: MaxListenersExceededWarning on every pull of a blob over ~10 MiB).
 */
export async function drained(out: PassThrough): Promise<void> {
  if (out.destroyed) throw new AbortError('blob stream closed');
  await new Promise<void>((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
  if (out.destroyed) throw new AbortError('blob stream closed');
}

/** Parses Retry-After: delta-seconds or an HTTP date. */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Waits, or rejects with the signal's reason when it aborts first. The abort listener is removed
 * when the wait ends: a pull's signal lives for the whole run, and a listener left behind per
 * retry used to pile up into MaxListenersExceededWarning.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
