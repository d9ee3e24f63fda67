// How a pull or mirror behaves on a network that is slow, failing or hostile, as the user sees it:
// a stall ends in exit 5 naming the host, the blob and the image; every wait before a retry is one
// line on stderr (never on --json stdout); repeated retries leak no listeners; a failed mirror
// says why on stderr with or without --json. An msw stand-in in front of the shared registry
// produces the faults.
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { http as msw } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type Fault, resetAt, type StandIn, startStandIn, statusStorm } from '../harness/standin.js';

const registry = inject('registry');
const IMAGE = 'fixtures/gzip:latest';
let standin: StandIn;
let work: { dir: string; cleanup: () => void };
let layers: Array<{ digest: string; size: number }>;
let n = 0;
const store = () => path.join(work.dir, `store-${n++}`);

beforeAll(async () => {
  work = tempDir('skiff-net-');
  standin = await startStandIn(registry);
  const res = await fetch(`http://${registry}/v2/fixtures/gzip/manifests/latest`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  layers = ((await res.json()) as { layers: Array<{ digest: string; size: number }> }).layers;
  expect(layers.length).toBeGreaterThan(0);
});
afterAll(async () => {
  await standin?.close();
  work?.cleanup();
});
beforeEach(() => standin.reset());

const pull = (args: string[] = [], env: Record<string, string> = {}) =>
  runCli(['pull', `${standin.host}/${IMAGE}`, ...args], { SKIFF_STORE: store(), ...env });

/**
 * A slow loris on one path (`/blobs/DIGEST`, `/manifests/TAG`): every GET of it (resumes included,
 * whatever their Range) is answered 200 with its first `bytes` bytes, then nothing for `stallMs`
 * (for ever if not given), then a reset. After the first answer no byte is new.
 */
function slowLoris(pathEnd: string, options: { bytes: number; stallMs?: number }): Fault {
  return (context) =>
    msw.get('*/v2/*', async ({ request }) => {
      if (!new URL(request.url).pathname.endsWith(pathEnd)) return undefined;
      const headers = new Headers(request.headers);
      headers.delete('range');
      const res = await context.next(new Request(request.url, { headers }));
      const whole = Buffer.from(await res.arrayBuffer());
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (!sent) {
            sent = true;
            controller.enqueue(whole.subarray(0, options.bytes));
            return;
          }
          if (options.stallMs === undefined) return new Promise<void>(() => {});
          await delay(options.stallMs);
          controller.error(new Error('slow loris: reset'));
        },
      });
      const type = res.headers.get('content-type') ?? 'application/octet-stream';
      return new Response(body, {
        status: 200,
        headers: { 'content-type': type, 'content-length': String(whole.length) },
      });
    });
}

const stallLine = (digest: string) =>
  `skiff: no data from ${standin.host} for 2 s while fetching blob ${digest.slice(0, 19)} of ${standin.host}/${IMAGE}`;

describe('a host that stops sending', () => {
  it('a few bytes, then nothing: exit 5 after --stall-timeout, one line naming host, blob and image', async () => {
    const layer = layers[0]!;
    standin.use(slowLoris(`/blobs/${layer.digest}`, { bytes: 100 }));
    const result = await pull(['--stall-timeout', '2']);
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr.trim().split('\n')).toEqual([stallLine(layer.digest)]);
  });

  it('a manifest that stops after a few bytes: exit 5, the line names host and image', async () => {
    standin.use(slowLoris('/manifests/latest', { bytes: 10 }));
    const result = await pull(['--stall-timeout', '2']);
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr.trim().split('\n')).toEqual([
      `skiff: no data from ${standin.host} for 2 s while fetching ${standin.host}/${IMAGE}`,
    ]);
  });

  it('a redirect target that stalls is the host named', async () => {
    const layer = layers[0]!;
    const storage = await startStandIn(registry);
    try {
      storage.use(slowLoris(`/blobs/${layer.digest}`, { bytes: 100 }));
      standin.use(
        msw.get('*/v2/*', ({ request }) => {
          const url = new URL(request.url);
          if (!url.pathname.endsWith(`/blobs/${layer.digest}`)) return undefined;
          return new Response(null, {
            status: 307,
            headers: { location: `http://${storage.host}${url.pathname}` },
          });
        }),
      );
      const result = await pull(['--stall-timeout', '2']);
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr.trim().split('\n')).toEqual([
        `skiff: no data from ${storage.host} for 2 s while fetching blob ${layer.digest.slice(0, 19)} of ${standin.host}/${IMAGE}`,
      ]);
    } finally {
      await storage.close();
    }
  });

  it('mirror: a stalled source blob ends the image with exit 5, without copying the blob again', async () => {
    const layer = layers[0]!;
    standin.use(slowLoris(`/blobs/${layer.digest}`, { bytes: 100 }));
    const result = await runCli([
      'mirror',
      '--stall-timeout',
      '2',
      `docker://${standin.host}/${IMAGE}`,
      `oci:${path.join(work.dir, 'stalled-layout')}:x`,
    ]);
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(`^skiff: failed .*: no data from ${standin.host.replace(/\./g, '\\.')} for 2 s`),
      ),
    ]);
    expect(standin.blobRequests(layer.digest)).toHaveLength(1);
  });

  it('stalls shorter than the timeout, each ended by a reset and a resume that brings no new byte: exit 5 (SKIFF_STALL_TIMEOUT)', async () => {
    const layer = layers[0]!;
    standin.use(slowLoris(`/blobs/${layer.digest}`, { bytes: 100, stallMs: 800 }));
    const result = await pull(['--retry-times', '20'], { SKIFF_STALL_TIMEOUT: '2' });
    expect(result.code, result.stderr).toBe(5);
    const lines = result.stderr.trim().split('\n');
    expect(lines.at(-1)).toBe(stallLine(layer.digest));
    // Every line before it announced a resume.
    expect(lines.slice(0, -1).every((l) => /; retrying in \d+\.\d s \(attempt \d+ of 21\)$/.test(l))).toBe(
      true,
    );
    expect(standin.blobRequests(layer.digest).length).toBeGreaterThan(1);
  });
});

describe('waiting on retries', () => {
  it('says each wait on stderr, one line each; --json stdout carries only the report', async () => {
    const layer = layers[0]!;
    standin.use(statusStorm({ digest: layer.digest, status: 503, times: 2 }));
    const result = await pull(['--json', '--retry-delay', '1']);
    expect(result.code, result.stderr).toBe(0);
    const pattern = (attempt: number) =>
      new RegExp(
        `^skiff: ${standin.host.replace(/\./g, '\\.')} answered 503; retrying in \\d+\\.\\d s \\(attempt ${attempt} of 5\\)$`,
      );
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(pattern(2)),
      expect.stringMatching(pattern(3)),
    ]);
    expect(result.stdout).not.toContain('retrying');
    expect(() => JSON.parse(result.stdout)).not.toThrow();
  });

  it('many retries on one pull leave no listener behind: no MaxListenersExceededWarning', async () => {
    const layer = layers[0]!;
    standin.use(resetAt({ digest: layer.digest, afterBytes: 1000, times: 14 }));
    const result = await pull(['--retry-times', '20', '--retry-delay', '1', '--jobs', '1']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/MaxListeners|memory leak|Warning/);
  });
});

describe('mirror --json', () => {
  it('a failed image prints its one skiff: line on stderr too, and the JSON on stdout', async () => {
    const result = await runCli([
      'mirror',
      '--json',
      `docker://${standin.host}/fixtures/absent:latest`,
      `oci:${path.join(work.dir, 'layout')}:x`,
    ]);
    expect(result.code, result.stderr).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^skiff: failed docker:\/\/.*fixtures\/absent:latest -> oci:.*not found/);
    expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({ error: { kind: 'not-found' } });
  });
});
