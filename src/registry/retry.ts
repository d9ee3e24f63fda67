/**
 * The one retry loop of skiff's network code. Requests, resumed blob bodies, range fetches and
 * blob uploads all ask a RetryBudget after a failed attempt; it decides whether to try again
 * (a retriable failure, retries left, the transfer not stalled), says so through the client's
 * listener (the CLI prints it on stderr), and waits the backoff, honouring Retry-After.
 *
 * A transfer is stalled when its host has sent no new byte for the stall timeout: one read that
 * idles that long (undici's headers/body timeouts are set to it), or resumes and retries that add
 * up to it without a new byte. A stall is final (exit 5): a slow-loris server cannot hold a pull
 * for the sum of every retry's timeouts.
 */
import { SkiffError, StallError } from '../errors/index.js';
import { formatDuration, shortDigest } from '../util/present.js';

export interface RetryPolicy {
  /** Retries after the first attempt (skopeo's --retry-times). */
  retries: number;
  /** First backoff delay; doubles each time, with jitter. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Retry-After values above this are capped, so a hostile server cannot park us for hours. */
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

/** Failures a later attempt may not see: retriable statuses, dropped or refused connections. */
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
    ].includes(code) ||
    error instanceof TypeError
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

export interface BudgetOptions {
  signal?: AbortSignal | undefined;
  /** Bounds all failures, progress or not (default: no bound beyond the consecutive ones). */
  maxFailures?: number | undefined;
  /**
   * The operation receives bytes and reports them with progressed(): then failures that add up to
   * the stall timeout without a new byte are a stall too. Off for requests (an upload sends for a
   * long time without receiving a byte), where only undici's idle timeouts mean a stall.
   */
  watchesBytes?: boolean | undefined;
}

/**
 * The retries of one operation. Consecutive failures are bounded by the policy's `retries`
 * (progress resets the count, so a long download may resume many times), and all failures by
 * `maxFailures`, so a server that drops every connection after a few bytes cannot keep us forever.
 */
export class RetryBudget {
  private failures = 0;
  private total = 0;
  private lastProgressAt = Date.now();
  private readonly signal: AbortSignal | undefined;
  private readonly maxFailures: number;
  private readonly watchesBytes: boolean;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly onRetry: RetryListener | undefined,
    options: BudgetOptions = {},
  ) {
    this.signal = options.signal;
    this.maxFailures = options.maxFailures ?? Number.POSITIVE_INFINITY;
    this.watchesBytes = options.watchesBytes ?? false;
  }

  /** New bytes arrived: the stall clock and the count of consecutive failures start again. */
  progressed(): void {
    this.failures = 0;
    this.lastProgressAt = Date.now();
  }

  /**
   * After a failed attempt: resolves when it is time for the next one, or throws the final error
   * (`step.final`), or a StallError when the host has sent nothing for the stall timeout.
   */
  async next(error: unknown, step: RetryStep): Promise<void> {
    const retriable = (step.retriable ?? isRetriableNetworkError)(error);
    if (retriable && this.stalled(error)) {
      throw new StallError(
        step.host ?? 'the server',
        this.policy.stallTimeoutMs,
        step.digest ? { digest: step.digest } : {},
        error,
      );
    }
    const final = step.final ?? ((e: unknown) => e);
    if (
      !retriable ||
      this.signal?.aborted ||
      this.failures >= this.policy.retries ||
      this.total >= this.maxFailures
    )
      throw final(error);
    this.failures++;
    this.total++;
    const delayMs = this.delayFor(error);
    this.onRetry?.({
      reason: step.reason ?? describeFailure(error, step),
      delayMs,
      attempt: this.failures + 1,
      attempts: this.policy.retries + 1,
    });
    await sleep(delayMs, this.signal);
  }

  private stalled(error: unknown): boolean {
    if (isIdleTimeout(error)) return true;
    return this.watchesBytes && Date.now() - this.lastProgressAt >= this.policy.stallTimeoutMs;
  }

  /** Exponential backoff with jitter; a Retry-After (capped) is a floor. */
  private delayFor(error: unknown): number {
    const backoff = Math.min(
      this.policy.maxDelayMs,
      this.policy.minDelayMs * 2 ** (this.failures - 1) * (1 + Math.random()),
    );
    const asked = error instanceof HttpStatusError ? error.retryAfterMs : undefined;
    return asked === undefined ? backoff : Math.max(backoff, Math.min(asked, this.policy.maxRetryAfterMs));
  }
}

function describeFailure(error: unknown, step: RetryStep): string {
  const about = step.digest ? ` (blob ${shortDigest(step.digest)})` : '';
  if (error instanceof HttpStatusError) return `${error.url.host} answered ${error.status}${about}`;
  if (error instanceof SkiffError) return error.oneLine();
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return `connection to ${step.host ?? 'the server'} failed${about}: ${code && !message.includes(code) ? `${code} ` : ''}${message}`;
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
