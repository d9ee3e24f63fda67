// RetryBudget, the one retry loop of the network code: what it retries, what it tells, when it
// gives up, and that its waits leave nothing attached to a long-lived abort signal.
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NetworkError, StallError } from '../../src/errors/index.js';
import {
  DEFAULT_RETRY,
  HttpStatusError,
  RetryBudget,
  type RetryNotice,
  type RetryPolicy,
  sleep,
} from '../../src/registry/retry.js';

const policy: RetryPolicy = { ...DEFAULT_RETRY, retries: 2, minDelayMs: 0, maxDelayMs: 0 };
const status = (code: number, retryAfterMs?: number) =>
  new HttpStatusError(code, new URL('http://registry.test/v2/'), '', retryAfterMs);
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

function budget(overrides: Partial<RetryPolicy> = {}, maxFailures?: number) {
  const notices: RetryNotice[] = [];
  const b = new RetryBudget({ ...policy, ...overrides }, (n) => notices.push(n), {
    maxFailures,
    watchesBytes: true,
  });
  return { b, notices };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('RetryBudget', () => {
  it('retries a retriable failure `retries` times, telling each wait, then throws the final error', async () => {
    const { b, notices } = budget();
    await b.next(status(503), { host: 'registry.test' });
    await b.next(status(503), { host: 'registry.test' });
    const final = new NetworkError('gave up');
    await expect(b.next(status(503), { host: 'registry.test', final: () => final })).rejects.toBe(final);
    expect(notices.map((n) => [n.reason, n.attempt, n.attempts])).toEqual([
      ['registry.test answered 503', 2, 3],
      ['registry.test answered 503', 3, 3],
    ]);
  });

  it('does not retry what will not get better (404, a SkiffError)', async () => {
    const { b, notices } = budget();
    await expect(b.next(status(404), { host: 'registry.test' })).rejects.toBeInstanceOf(HttpStatusError);
    await expect(b.next(new NetworkError('x'), { host: 'registry.test' })).rejects.toBeInstanceOf(
      NetworkError,
    );
    expect(notices).toEqual([]);
  });

  it('progress resets the consecutive failures; maxFailures still bounds them all', async () => {
    const { b, notices } = budget({}, 3);
    for (let i = 0; i < 3; i++) {
      await b.next(reset(), { host: 'registry.test' });
      b.progressed();
    }
    await expect(b.next(reset(), { host: 'registry.test' })).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(notices.map((n) => n.attempt)).toEqual([2, 2, 2]);
  });

  it('Retry-After is a floor for the delay, capped by maxRetryAfterMs', async () => {
    vi.useFakeTimers();
    const { b, notices } = budget({ maxRetryAfterMs: 5_000 });
    const first = b.next(status(429, 2_000), { host: 'registry.test' });
    await vi.advanceTimersByTimeAsync(2_000);
    await first;
    const second = b.next(status(429, 3_600_000), { host: 'registry.test' });
    await vi.advanceTimersByTimeAsync(5_000);
    await second;
    expect(notices.map((n) => n.delayMs)).toEqual([2_000, 5_000]);
  });

  it("an idle timeout of undici's is a stall at once, naming the host and the blob", async () => {
    const { b, notices } = budget();
    const timeout = Object.assign(new Error('Body Timeout Error'), { code: 'UND_ERR_BODY_TIMEOUT' });
    const error = await b
      .next(timeout, { host: 'cdn.test', digest: `sha256:${'a'.repeat(64)}` })
      .catch((e) => e);
    expect(error).toBeInstanceOf(StallError);
    expect(error.exitCode).toBe(5);
    expect(error.withContext({ image: 'registry.test/app:1' }).oneLine()).toBe(
      'no data from cdn.test for 60 s while fetching blob sha256:aaaaaaaaaaaa of registry.test/app:1',
    );
    expect(notices).toEqual([]);
  });

  it('failures that add up to the stall timeout without a new byte are a stall', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { b } = budget({ retries: 100, stallTimeoutMs: 10_000 });
    await b.next(reset(), { host: 'registry.test' });
    vi.setSystemTime(Date.now() + 9_000);
    b.progressed();
    vi.setSystemTime(Date.now() + 9_000);
    await b.next(reset(), { host: 'registry.test' });
    vi.setSystemTime(Date.now() + 1_000);
    await expect(b.next(reset(), { host: 'registry.test' })).rejects.toBeInstanceOf(StallError);
  });

  it('a request budget (no byte watching) is not a stall for time alone: a long upload that then fails is retried', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const b = new RetryBudget({ ...policy, stallTimeoutMs: 10_000 }, undefined, {});
    vi.setSystemTime(Date.now() + 600_000);
    await expect(b.next(reset(), { host: 'registry.test' })).resolves.toBeUndefined();
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
