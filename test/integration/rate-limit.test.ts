// Registries that meter pulls (issue 13, rate limits), as the user sees them: a stand-in in front of
// the shared registry counts manifest GETs as Docker Hub does (HEADs are free), announces the quota
// in RateLimit headers and answers 429 with Retry-After past it. skiff waits as long as asked when
// --retry-delay-max allows it, fails with one line naming the registry and the wait when not,
// reports the quota in --json and --verbose, and a mirror re-run makes no counted GET.
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { expectCleanStderr, RETRY_NOTICE, runCli, tempDir } from '../harness/cli.js';
import { meteredManifests, type StandIn, startStandIn } from '../harness/standin.js';

const registry = inject('registry');
const IMAGE = 'fixtures/gzip:latest';
let standin: StandIn;
let work: { dir: string; cleanup: () => void };
let n = 0;
const store = () => path.join(work.dir, `store-${n++}`);

beforeAll(async () => {
  work = tempDir('skiff-ratelimit-');
  standin = await startStandIn(registry);
});
afterAll(async () => {
  await standin?.close();
  work?.cleanup();
});
beforeEach(() => standin.reset());

const pull = (args: string[] = [], env: Record<string, string> = {}) =>
  runCli(['pull', `${standin.host}/${IMAGE}`, ...args], { SKIFF_STORE: store(), ...env });

const notices = (stderr: string) => stderr.split('\n').filter((line) => RETRY_NOTICE.test(line));

describe('Retry-After', () => {
  it('429 with Retry-After: 1 → says it waits the second asked for, then pulls', async () => {
    const { fault, meter } = meteredManifests({ limit: 0, retryAfter: '1', refusals: 1 });
    standin.use(fault);
    const result = await pull();
    expect(result.code, result.stderr).toBe(0);
    expect(meter.refused).toBe(1);
    expect(notices(result.stderr)).toEqual([
      `skiff: ${standin.host} answered 429; retrying in 1.0 s (attempt 2 of 5)`,
    ]);
  });

  it('a Retry-After beyond the default cap (60 s) → exit 5 at once, one line naming the registry and the wait', async () => {
    const { fault, meter } = meteredManifests({ limit: 0, retryAfter: '120' });
    standin.use(fault);
    const result = await pull();
    expect(result.code, result.stderr).toBe(5);
    expect(meter.refused).toBe(1);
    expect(expectCleanStderr(result)).toBe(
      `skiff: ${standin.host}/${IMAGE}: registry ${standin.host} answered 429 and asked to wait 2 min before retrying (Retry-After), longer than --retry-delay-max 60 s: try again later or allow the wait with --retry-delay-max`,
    );
  });

  it('--retry-delay-max and SKIFF_RETRY_DELAY_MAX set the cap: below the wait asked for it fails, above it waits', async () => {
    standin.use(meteredManifests({ limit: 0, retryAfter: '2', refusals: 1 }).fault);
    const refused = await pull(['--retry-delay-max', '1s']);
    expect(refused.code, refused.stderr).toBe(5);
    expect(expectCleanStderr(refused)).toContain(
      'asked to wait 2 s before retrying (Retry-After), longer than --retry-delay-max 1 s',
    );

    standin.reset();
    standin.use(meteredManifests({ limit: 0, retryAfter: '2', refusals: 1 }).fault);
    const allowed = await pull([], { SKIFF_RETRY_DELAY_MAX: '3s' });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(notices(allowed.stderr)).toEqual([
      `skiff: ${standin.host} answered 429; retrying in 2.0 s (attempt 2 of 5)`,
    ]);
  });

  it('--retry-delay-max that is not a duration is a usage error', async () => {
    const result = await pull(['--retry-delay-max', 'soon']);
    expect(result.code).toBe(1);
    expect(expectCleanStderr(result)).toContain('--retry-delay-max "soon"');
  });
});

describe('RateLimit headers', () => {
  it('pull --json carries the quota the registry announced, per registry; --verbose says it on stderr', async () => {
    const { fault, meter } = meteredManifests({ limit: 100 });
    standin.use(fault);
    const result = await pull(['--json', '--verbose']);
    expect(result.code, result.stderr).toBe(0);
    expect(meter.counted).toBeGreaterThan(0);
    const report = JSON.parse(result.stdout) as { rateLimit: Record<string, unknown> };
    expect(report.rateLimit).toEqual({
      [standin.host]: { limit: 100, remaining: 100 - meter.counted, windowSeconds: 21600 },
    });
    expect(result.stderr).toContain(
      `rate limit of ${standin.host}: ${100 - meter.counted} of 100 requests left (window 6 h)`,
    );
  });
});

describe('mirror against a metered source', () => {
  it('reports the quota in --json, and a re-run makes zero counted manifest GETs (HEADs only)', async () => {
    const destination = `docker://${registry}/ratelimit/gzip-${process.pid}:latest`;
    const mirror = () => runCli(['mirror', '--json', `docker://${standin.host}/${IMAGE}`, destination]);

    const first = meteredManifests({ limit: 100 });
    standin.use(first.fault);
    const copied = await mirror();
    expect(copied.code, copied.stderr).toBe(0);
    expect(first.meter.counted).toBeGreaterThan(0);
    const lines = copied.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({
      type: 'summary',
      rateLimit: { [standin.host]: { limit: 100, remaining: 100 - first.meter.counted } },
      manifestGets: { [standin.host]: first.meter.counted },
    });

    standin.reset();
    const again = meteredManifests({ limit: 100 });
    standin.use(again.fault);
    const rerun = await mirror();
    expect(rerun.code, rerun.stderr).toBe(0);
    const [image, summary] = rerun.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(image).toMatchObject({ upToDate: true, blobsCopied: 0 });
    expect(again.meter.counted).toBe(0);
    // Not at the destination either: it was asked by HEAD too.
    expect(summary!.manifestGets).toEqual({});
    // One HEAD decides the image; the others ask for its cosign and referrers tags (none here).
    const heads = standin.log.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/'));
    expect(heads.filter((r) => !/\/manifests\/sha256-[0-9a-f]{64}/.test(r.path))).toHaveLength(1);
  });

  it('a converting mirror re-run is decided by a HEAD at the source and the annotations at the destination', async () => {
    const destination = `docker://${registry}/ratelimit/zstd-${process.pid}:latest`;
    const mirror = () =>
      runCli(['mirror', '--json', '--convert', 'zstd', `docker://${standin.host}/${IMAGE}`, destination]);
    standin.use(meteredManifests({ limit: 100 }).fault);
    const converted = await mirror();
    expect(converted.code, converted.stderr).toBe(0);

    standin.reset();
    const again = meteredManifests({ limit: 100 });
    standin.use(again.fault);
    const rerun = await mirror();
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout.split('\n')[0]!)).toMatchObject({ upToDate: true, blobsCopied: 0 });
    expect(again.meter.counted).toBe(0);
  });
});
