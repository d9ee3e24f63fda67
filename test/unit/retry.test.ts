// The one retry policy of the network code (withRetries, on p-retry): what it retries, what it
// tells, when it gives up, Retry-After and its cap, resumed blob bodies, and that its waits leave
// nothing attached to a long-lived abort signal.
import { getEventListeners } from 'node:events';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NetworkError, StallError } from '../../src/errors/index.js';
import { formatRateLimit, parseRateLimit } from '../../src/registry/rate-limit.js';
import {
  type AttemptProgress,
  type BodyResponse,
  DEFAULT_RETRY,
  HttpStatusError,
  type RetryNotice,
  type RetryOptions,
  type RetryPolicy,
  resumingBody,
  retryAfterMs,
  sleep,
  withRetries,
} from '../../src/registry/retry.js';

const policy: RetryPolicy = { ...DEFAULT_RETRY, retries: 2, minDelayMs: 0, maxDelayMs: 0 };
const status = (code: number, retryAfter?: number) =>
  new HttpStatusError(code, new URL('http://registry.test/v2/'), '', retryAfter);
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** Runs an operation that fails with each of `failures` in turn (then succeeds), recording notices. */
function run(
  failures: Array<unknown | ((progress: AttemptProgress) => unknown)>,
  options: RetryOptions = {},
  overrides: Partial<RetryPolicy> = {},
) {
  const notices: RetryNotice[] = [];
  let attempts = 0;
  const done = withRetries(
    { policy: { ...policy, ...overrides }, onRetry: (n) => notices.push(n) },
    { step: { host: 'registry.test' }, ...options },
    async (progress) => {
      const failure = failures[attempts++];
      if (failure === undefined) return 'ok';
      throw typeof failure === 'function' ? failure(progress) : failure;
    },
  );
  return { done, notices, attempts: () => attempts };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('withRetries', () => {
  it('retries a retriable failure `retries` times, telling each wait, then throws the final error', async () => {
    const final = new NetworkError('gave up');
    const r = run([status(503), status(503), status(503)], {
      step: { host: 'registry.test', final: () => final },
    });
    await expect(r.done).rejects.toBe(final);
    expect(r.attempts()).toBe(3);
    expect(r.notices.map((n) => [n.reason, n.attempt, n.attempts])).toEqual([
      ['registry.test answered 503', 2, 3],
      ['registry.test answered 503', 3, 3],
    ]);
  });

  it('succeeds on the attempt after a transient failure', async () => {
    const r = run([reset()]);
    await expect(r.done).resolves.toBe('ok');
    expect(r.notices[0]!.reason).toBe('connection to registry.test failed: ECONNRESET socket hang up');
  });

  it('does not retry what will not get better (404, a SkiffError, a TypeError)', async () => {
    for (const failure of [status(404), new NetworkError('x'), new TypeError('bug')]) {
      const r = run([failure]);
      await expect(r.done).rejects.toBe(failure);
      expect(r.attempts()).toBe(1);
      expect(r.notices).toEqual([]);
    }
  });

  it('a failure after progress does not count against the consecutive retries; maxFailures bounds them all', async () => {
    const afterBytes = (progress: AttemptProgress) => {
      progress.progressed();
      return reset();
    };
    const r = run([reset(), afterBytes, afterBytes, afterBytes], { maxFailures: 3 });
    await expect(r.done).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(r.notices.map((n) => n.attempt)).toEqual([2, 2, 2]);
    // The attempts that made progress were resumed at once.
    expect(r.notices.map((n) => n.delayMs)).toEqual([0, 0, 0]);
  });

  it('Retry-After is a floor for the delay', async () => {
    vi.useFakeTimers();
    const r = run([status(429, 2_000), status(503, 3_000)], {}, { maxRetryAfterMs: 5_000 });
    await vi.advanceTimersByTimeAsync(5_000);
    await expect(r.done).resolves.toBe('ok');
    expect(r.notices.map((n) => n.delayMs)).toEqual([2_000, 3_000]);
  });

  it('a Retry-After longer than --retry-delay-max is final: one NetworkError naming the registry and the wait', async () => {
    const r = run([status(429, 3_600_000)], {}, { maxRetryAfterMs: 60_000 });
    const error = await r.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).exitCode).toBe(5);
    expect((error as NetworkError).message).toBe(
      'registry registry.test answered 429 and asked to wait 60 min before retrying (Retry-After), longer than --retry-delay-max 60 s: try again later or allow the wait with --retry-delay-max',
    );
    expect(r.attempts()).toBe(1);
    expect(r.notices).toEqual([]);
  });

  it("an idle timeout of undici's is a stall at once, naming the host and the blob", async () => {
    const timeout = Object.assign(new Error('Body Timeout Error'), { code: 'UND_ERR_BODY_TIMEOUT' });
    const r = run([timeout], { step: { host: 'cdn.test', digest: `sha256:${'a'.repeat(64)}` } });
    const error = (await r.done.catch((e: unknown) => e)) as StallError;
    expect(error).toBeInstanceOf(StallError);
    expect(error.exitCode).toBe(5);
    expect(error.withContext({ image: 'registry.test/app:1' }).oneLine()).toBe(
      'no data from cdn.test for 60 s while fetching blob sha256:aaaaaaaaaaaa of registry.test/app:1',
    );
    expect(r.notices).toEqual([]);
  });

  it('failures that add up to the stall timeout without a new byte are a stall', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const later =
      (ms: number, progressed = false) =>
      (progress: AttemptProgress) => {
        vi.setSystemTime(Date.now() + ms);
        if (progressed) progress.progressed();
        return reset();
      };
    const r = run(
      [reset(), later(9_000, true), later(9_000), later(1_000)],
      { watchesBytes: true },
      {
        retries: 100,
        stallTimeoutMs: 10_000,
      },
    );
    await expect(r.done).rejects.toBeInstanceOf(StallError);
    expect(r.attempts()).toBe(4);
  });

  it('a request (no byte watching) is not a stall for time alone: a long upload that then fails is retried', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const r = run(
      [
        () => {
          vi.setSystemTime(Date.now() + 600_000);
          return reset();
        },
      ],
      {},
      { stallTimeoutMs: 10_000 },
    );
    await expect(r.done).resolves.toBe('ok');
  });

  it('leaves no abort listener on the signal once the operation is over', async () => {
    const signal = new AbortController().signal;
    for (let i = 0; i < 20; i++) await run([status(503, 0)], { signal }).done;
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });
});

describe('resumingBody', () => {
  /** A body that yields `chunks` and then, if given, fails with `error`. */
  function response(status: number, chunks: string[], error?: Error): BodyResponse {
    async function* body() {
      for (const chunk of chunks) yield Buffer.from(chunk);
      if (error) throw error;
    }
    const iterable = body();
    return {
      status,
      url: new URL('http://registry.test/v2/x/blobs/sha256:0'),
      body: Object.assign(iterable, { destroyed: false, destroy: () => undefined }),
    };
  }

  it('asks for the rest from where the connection dropped, and skips ahead in a 200 answer', async () => {
    const offsets: number[] = [];
    const answers = [response(206, ['llo ', 'wo'], reset()), response(200, ['hello world'])];
    const stream = resumingBody(
      { policy },
      {
        digest: `sha256:${'b'.repeat(64)}`,
        first: response(200, ['he'], reset()),
        base: 0,
        reopen: async (offset) => {
          offsets.push(offset);
          return answers.shift()!;
        },
      },
    );
    expect(await text(stream)).toBe('hello world');
    expect(offsets).toEqual([2, 8]);
  });

  it('waits for a slow consumer without leaving listeners on the stream, however long the blob', async () => {
    const piece = 'x'.repeat(1 << 20);
    const stream = resumingBody(
      { policy },
      {
        digest: `sha256:${'d'.repeat(64)}`,
        first: response(
          200,
          Array.from({ length: 40 }, () => piece),
        ),
        base: 0,
        reopen: async () => response(206, []),
      },
    );
    let bytes = 0;
    let mostListeners = 0;
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      mostListeners = Math.max(mostListeners, stream.listenerCount('close'), stream.listenerCount('error'));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(bytes).toBe(40 << 20);
    // The stream's own and the iterator's listeners, and one wait's: not one per wait (40 here).
    expect(mostListeners).toBeLessThanOrEqual(5);
  });

  it('a body that keeps failing ends the stream with a NetworkError naming the blob', async () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const stream = resumingBody(
      { policy },
      {
        digest,
        first: response(200, [], reset()),
        base: 0,
        reopen: async () => response(206, [], reset()),
      },
    );
    await expect(text(stream)).rejects.toThrow(
      `blob ${digest}: connection failed after 0 bytes: socket hang up`,
    );
  });
});

describe('Retry-After and rate limits', () => {
  it('reads Retry-After as seconds and as an HTTP date', () => {
    expect(retryAfterMs('7')).toBe(7_000);
    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    expect(retryAfterMs(inAMinute)).toBeGreaterThan(55_000);
    expect(retryAfterMs('Thu, 01 Jan 1970 00:00:00 GMT')).toBe(0);
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  it("reads the draft's RateLimit headers and Docker Hub's quota;window form", () => {
    expect(parseRateLimit({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' })).toEqual(
      {
        limit: 100,
        remaining: 76,
        windowSeconds: 21600,
      },
    );
    expect(
      parseRateLimit({ 'ratelimit-limit': '10', 'ratelimit-remaining': '0', 'ratelimit-reset': '30' }),
    ).toEqual({ limit: 10, remaining: 0, resetSeconds: 30 });
    expect(parseRateLimit({ 'ratelimit-limit': '10' })).toBeUndefined();
    expect(formatRateLimit('hub.test', { limit: 100, remaining: 76, windowSeconds: 21600 })).toBe(
      'hub.test: 76 of 100 requests left (window 6 h)',
    );
  });
});

describe('sleep', () => {
  it('leaves no abort listener on the signal once the wait is over', async () => {
    const signal = new AbortController().signal;
    for (let i = 0; i < 20; i++) await sleep(0, signal);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('rejects with the reason when the signal aborts first', async () => {
    const controller = new AbortController();
    const waiting = sleep(60_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
  });
});
