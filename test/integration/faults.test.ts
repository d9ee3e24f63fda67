// Failures leave the store exactly as it was, and run-time fallbacks go through the strategy module.
// A real registry (docker-registry) holds the images; an msw stand-in in front of it produces the
// faults a real registry will not produce on demand. Every case ends either in a correct pull whose
// report carries the right method and reason, or in the right exit code with the store unchanged.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SkiffError } from '../../src/errors/index.js';
import { type PullReport, pull } from '../../src/pull/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Store } from '../../src/store/index.js';
import type { LayerDecision, LayerFacts, LayerViolation, Plan } from '../../src/strategy/index.js';
import { unpack } from '../../src/unpack/index.js';
import { chunkedTree, pushChunkedPair, type Tree } from '../harness/chunked-pair.js';
import { pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';
import {
  corruptBlob,
  corruptPart,
  hugeManifest,
  ignoreRange,
  resetAt,
  type StandIn,
  serveBytes,
  singleRangeOnly,
  startStandIn,
  statusStorm,
  truncatePart,
} from '../harness/standin.js';

// Every call the executor makes into the strategy module, recorded: a fallback that shows up on a
// report must have come out of one of these calls, with the run-time fact that caused it.
const strategy = vi.hoisted(() => ({
  plans: [] as Array<{ layers: LayerFacts[]; plan: Plan }>,
  redecisions: [] as Array<{ facts: LayerFacts; outcome: LayerDecision | LayerViolation }>,
}));
vi.mock('../../src/strategy/index.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/strategy/index.js')>();
  return {
    ...real,
    planPull: (...args: Parameters<typeof real.planPull>) => {
      const plan = real.planPull(...args);
      strategy.plans.push(structuredClone({ layers: [...args[1]], plan }));
      return plan;
    },
    decideLayer: (...args: Parameters<typeof real.decideLayer>) => {
      const outcome = real.decideLayer(...args);
      strategy.redecisions.push(structuredClone({ facts: args[1], outcome }));
      return outcome;
    },
  };
});

// ---- store snapshots ------------------------------------------------------------------------------

interface Entry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  size: number;
  sha256?: string;
  link?: string;
}

/**
 * Every path under a store with its type, mode, size and content hash (no times: they say
 * nothing). Resumable state (resume/) is not the store's content: a failed pull may leave some.
 */
function snapshotStore(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const relPath = rel ? `${rel}/${name}` : name;
      if (relPath === 'resume') continue;
      const full = path.join(dir, relPath);
      const st = fs.lstatSync(full);
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : 'other';
      const entry: Entry = { type, mode: st.mode & 0o7777, size: st.isFile() ? st.size : 0 };
      if (st.isFile()) entry.sha256 = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
      if (st.isSymbolicLink()) entry.link = fs.readlinkSync(full);
      out.set(relPath, entry);
      if (st.isDirectory()) walk(relPath);
    }
  };
  walk('');
  return out;
}

function diffStore(before: Map<string, Entry>, after: Map<string, Entry>) {
  const added = [...after.keys()].filter((p) => !before.has(p));
  const removed = [...before.keys()].filter((p) => !after.has(p));
  const changed = [...before.keys()].filter(
    (p) => after.has(p) && JSON.stringify(before.get(p)) !== JSON.stringify(after.get(p)),
  );
  return { added, removed, changed };
}

// ---- the world: an upstream registry, the stand-in in front of it, a template store -------------

let work: string;
let upstream: RunningRegistry;
let standin: StandIn;
let templateStore: string;
let storeCount = 0;

interface Descriptor {
  digest: string;
  size: number;
  mediaType: string;
  annotations?: Record<string, string>;
}
interface Manifest {
  config: Descriptor;
  layers: Descriptor[];
}
let gzip: Manifest;
let v2: Manifest;
let v2Layer: Descriptor;

async function upstreamManifest(repo: string, tag: string): Promise<{ bytes: Buffer; doc: Manifest }> {
  const res = await fetch(`http://${upstream.host}/v2/${repo}/manifests/${tag}`, {
    headers: {
      accept:
        'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { bytes, doc: JSON.parse(bytes.toString()) as Manifest };
}

const RETRIES = 3;
const newClient = () => new RegistryClient({ retry: { retries: RETRIES, minDelayMs: 10, maxDelayMs: 100 } });

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-faults-'));
  upstream = await startRegistry();
  standin = await startStandIn(upstream.host);
  await Promise.all([
    pushFixture(upstream.host, 'multi', 'other/multi:latest'),
    pushFixture(upstream.host, 'gzip', 'fixtures/gzip:latest'),
    pushChunkedPair(upstream.host, 'chunked/app', work),
  ]);
  gzip = (await upstreamManifest('fixtures/gzip', 'latest')).doc;
  v2 = (await upstreamManifest('chunked/app', 'v2')).doc;
  expect(v2.layers).toHaveLength(1);
  v2Layer = v2.layers[0]!;
  expect(Object.keys(v2Layer.annotations ?? {})).toContain(
    'io.github.containers.zstd-chunked.tarsplit-position',
  );

  // The store every case starts from: an unrelated image, and v1 of the chunked pair (which makes
  // a partial pull of v2 worth it), both pulled straight from the upstream.
  templateStore = path.join(work, 'template-store');
  const store = await Store.open(templateStore);
  const client = newClient();
  try {
    await pull({ reference: `${upstream.host}/other/multi:latest`, store, client, platform: 'linux/amd64' });
    await pull({ reference: `${upstream.host}/chunked/app:v1`, store, client });
  } finally {
    await client.close();
  }
});

afterAll(async () => {
  await standin?.close();
  await upstream?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  standin.reset();
  strategy.plans.length = 0;
  strategy.redecisions.length = 0;
});

afterEach(() => {
  // A fault handler that threw answered 500: the case then tested the stand-in, not skiff.
  expect(standin.errors).toEqual([]);
});

// ---- per-case helpers -------------------------------------------------------------------------------

interface Case {
  dir: string;
  store: Store;
  before: Map<string, Entry>;
  client: RegistryClient;
  pull(repoTag: string, options?: Partial<Parameters<typeof pull>[0]>): Promise<PullReport>;
  expectUnchanged(): void;
}

async function freshCase(): Promise<Case> {
  const dir = path.join(work, `store-${++storeCount}`);
  fs.cpSync(templateStore, dir, { recursive: true });
  const before = snapshotStore(dir);
  const store = await Store.open(dir);
  const client = newClient();
  openClients.push(client);
  return {
    dir,
    store,
    before,
    client,
    pull: (repoTag, options = {}) =>
      pull({ reference: `${standin.host}/${repoTag}`, store, client, platform: 'linux/amd64', ...options }),
    expectUnchanged: () =>
      expect(diffStore(before, snapshotStore(dir))).toEqual({ added: [], removed: [], changed: [] }),
  };
}

const openClients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(openClients.splice(0).map((c) => c.close()));
});

async function expectExit(promise: Promise<unknown>, exitCode: number): Promise<SkiffError> {
  const error = await promise.then(
    (report) => new Error(`the pull succeeded: ${JSON.stringify(report)}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SkiffError);
  expect({ exitCode: (error as SkiffError).exitCode, message: (error as Error).message }).toMatchObject({
    exitCode,
  });
  return error as SkiffError;
}

/** Unpacks what a report committed and compares it with the files expected. */
async function expectContent(c: Case, report: PullReport, files: Tree): Promise<void> {
  const target = path.join(work, `unpack-${storeCount}-${Math.random().toString(36).slice(2)}`);
  await unpack(
    c.store,
    report.layers.map((l) => l.diffID!),
    target,
  );
  for (const [file, content] of files) {
    expect(fs.readFileSync(path.join(target, file)).equals(content), `${file} unpacked intact`).toBe(true);
  }
  fs.rmSync(target, { recursive: true, force: true });
}

/** A few files of the gzip fixture's merged rootfs (see fixtures/lib/trees.mjs). */
async function gzipFiles(): Promise<Tree> {
  // @ts-expect-error: plain JS fixture library without type declarations
  const { pseudoRandom } = (await import('../../fixtures/lib/trees.mjs')) as {
    pseudoRandom: (seed: string, size: number) => Buffer;
  };
  return new Map([
    ['etc/hostname', Buffer.from('skiff-v2\n')],
    ['usr/bin/tool', pseudoRandom('tool', 32_768)],
    ['usr/bin/new-tool', pseudoRandom('new-tool', 20_000)],
    ['var/lib/data.bin', pseudoRandom('data-v2', 110_000)],
  ]);
}

const layerRanges = (digest: string) => standin.blobRequests(digest).filter((r) => r.range !== undefined);
const layerFullGets = (digest: string) => standin.blobRequests(digest).filter((r) => r.range === undefined);

/** The executor's second opinion on a layer: the facts it learnt at run time, and the answer. */
function redecisionFor(digest: string) {
  const found = strategy.redecisions.filter((d) => d.facts.digest === digest);
  expect(found.length, `the executor asked the strategy module again about ${digest}`).toBeGreaterThan(0);
  return found.at(-1)!;
}

// ---- cases ----------------------------------------------------------------------------------------

describe('the stand-in itself', () => {
  it('passes a clean pull through: v2 is pulled partially, with two ranges in one request', async () => {
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(report.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
    expect(report.layers[0]!.bytesFetched).toBeLessThan(v2Layer.size / 2);
    expect(layerRanges(v2Layer.digest).some((r) => r.range!.includes(',') && r.status === 206)).toBe(true);
    expect(layerFullGets(v2Layer.digest)).toEqual([]);
    await expectContent(c, report, chunkedTree(2));
  });
});

describe('ranges not served as asked', () => {
  it('ignored Range (200 with the whole blob) → full pull, no-range-support, planned from the run-time fact', async () => {
    standin.use(ignoreRange({ digest: v2Layer.digest }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(report.layers[0]).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    // The TOC request was answered 200: the plan was made with that fact, by the strategy module.
    const planned = strategy.plans.at(-1)!;
    expect(planned.layers[0]!.runtime).toMatchObject({ rangesIgnored: true });
    expect(planned.plan.layers[0]).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    expect(layerRanges(v2Layer.digest).map((r) => r.status)).toEqual([200]);
    await expectContent(c, report, chunkedTree(2));
  });

  it('Range ignored only once the TOC is read → the executor re-asks the strategy module → full, no-range-support', async () => {
    standin.use(ignoreRange({ digest: v2Layer.digest, skip: 1 }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(strategy.plans.at(-1)!.plan.layers[0]).toMatchObject({ method: 'partial' });
    const again = redecisionFor(v2Layer.digest);
    expect(again.facts.runtime).toMatchObject({ rangesIgnored: true });
    expect(again.outcome).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    expect(report.layers[0]).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    await expectContent(c, report, chunkedTree(2));
  });

  it('single ranges only (a multi-range request gets a 206 of its first range) → still partial, one range per request', async () => {
    standin.use(singleRangeOnly({ digest: v2Layer.digest, answer: 'first' }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    const again = redecisionFor(v2Layer.digest);
    expect(again.facts.runtime).toMatchObject({ multiRangeRefused: true });
    expect(again.outcome).toMatchObject({ method: 'partial', rangesPerRequest: 1 });
    expect(report.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
    // After the refusal every request asks for one range, and no whole-blob GET happened.
    const ranges = layerRanges(v2Layer.digest);
    const refused = ranges.findIndex((r) => r.range!.includes(','));
    expect(refused).toBeGreaterThanOrEqual(0);
    expect(ranges.slice(refused + 1).every((r) => !r.range!.includes(',') && r.status === 206)).toBe(true);
    expect(layerFullGets(v2Layer.digest)).toEqual([]);
    await expectContent(c, report, chunkedTree(2));
  });

  it('single ranges only (a multi-range request gets 200 and the whole blob) → full, no-range-support', async () => {
    standin.use(singleRangeOnly({ digest: v2Layer.digest, answer: 'whole' }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(redecisionFor(v2Layer.digest).facts.runtime).toMatchObject({ rangesIgnored: true });
    expect(report.layers[0]).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    await expectContent(c, report, chunkedTree(2));
  });
});

describe('broken range answers', () => {
  // Either outcome is allowed: a retry that ends in a verified pull, or exit 4 and nothing committed.
  // A body that ends before its closing boundary is retried like a dropped connection; a part
  // shorter than its Content-Range says is a malformed answer (exit 4). Both paths are checked.
  for (const how of ['end-body', 'short-part'] as const) {
    it(`a multipart part cut short (${how}) → exit 4, store unchanged (or a verified retry)`, async () => {
      standin.use(truncatePart({ digest: v2Layer.digest, keep: 100, how, times: 1 }));
      const c = await freshCase();
      const outcome = await c.pull('chunked/app:v2').then(
        (report) => ({ report }),
        (error: unknown) => ({ error }),
      );
      if ('report' in outcome) {
        expect(outcome.report.layers[0]).toMatchObject({ method: 'partial' });
        await expectContent(c, outcome.report, chunkedTree(2));
      } else {
        await expectExit(Promise.reject(outcome.error), 4);
        c.expectUnchanged();
      }
    });
  }

  it('a single-range answer (the TOC read) cut short once → retried, partial pull succeeds', async () => {
    standin.use(
      truncatePart({ digest: v2Layer.digest, keep: 100, how: 'end-body', times: 1, anyRange: true }),
    );
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(report.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
    const [cut, again] = layerRanges(v2Layer.digest);
    expect(cut!.range).toBe(again!.range);
    await expectContent(c, report, chunkedTree(2));
  });

  it('one corrupted byte in a part → exit 4 (chunk digest), no fallback, store unchanged', async () => {
    // docs/design.md §5, §10: every fetched chunk is checked against the TOC, and a digest mismatch is never
    // retried into success: a verification failure, not a run-time fact for a fallback.
    // The first range request reads the TOC (a corrupt TOC is another case, below): skip it.
    standin.use(corruptPart({ digest: v2Layer.digest, part: 0, skip: 1 }));
    const c = await freshCase();
    const error = await expectExit(c.pull('chunked/app:v2'), 4);
    expect(error.message).toMatch(/digest|decompress/);
    expect(error.context.digest).toBe(v2Layer.digest);
    expect(layerFullGets(v2Layer.digest)).toEqual([]);
    c.expectUnchanged();
  });
});

describe('dropped connections', () => {
  // A dropped connection during a full pull resumes with Range from the last byte delivered;
  // only a connection that keeps failing ends the pull, as a network failure (exit 5).
  it('a reset mid-body once on a full gzip pull → resumed with Range, pull succeeds', async () => {
    const layer = gzip.layers[0]!;
    standin.use(resetAt({ digest: layer.digest, at: Math.floor(layer.size / 2), times: 1 }));
    const c = await freshCase();
    const report = await c.pull('fixtures/gzip:latest');
    expect(report.layers.map((l) => l.method)).toEqual(['full', 'full']);
    const requests = standin.blobRequests(layer.digest);
    expect(requests[0]).toMatchObject({ status: 200, reset: true, range: undefined });
    expect(requests[1]).toMatchObject({ status: 206 });
    expect(requests[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    await expectContent(c, report, await gzipFiles());
  });

  it('a reset at the same byte every time → exit 5, store unchanged', async () => {
    const layer = gzip.layers[0]!;
    standin.use(resetAt({ digest: layer.digest, at: Math.floor(layer.size / 2) }));
    const c = await freshCase();
    await expectExit(c.pull('fixtures/gzip:latest'), 5);
    expect(standin.blobRequests(layer.digest).every((r) => r.reset)).toBe(true);
    c.expectUnchanged();
  });

  it('a reset inside a multipart answer once → the missing ranges are fetched again, partial pull succeeds', async () => {
    // Skip the TOC read; reset the file-range request 200 bytes into its body.
    standin.use(resetAt({ digest: v2Layer.digest, afterBytes: 200, rangesOnly: true, skip: 1, times: 1 }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    expect(report.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
    const ranges = layerRanges(v2Layer.digest);
    expect(ranges[1]).toMatchObject({ reset: true });
    expect(ranges[1]!.range).toContain(',');
    expect(ranges.length).toBeGreaterThan(2);
    expect(layerFullGets(v2Layer.digest)).toEqual([]);
    await expectContent(c, report, chunkedTree(2));
  });
});

describe('server errors', () => {
  it('503 three times, then OK → succeeds', async () => {
    const layer = gzip.layers[1]!;
    standin.use(statusStorm({ digest: layer.digest, status: 503, times: 3 }));
    const c = await freshCase();
    const report = await c.pull('fixtures/gzip:latest');
    expect(standin.blobRequests(layer.digest).map((r) => r.status)).toEqual([503, 503, 503, 200]);
    await expectContent(c, report, await gzipFiles());
  });

  it('503 forever → exit 5 after the configured retries, store unchanged', async () => {
    const layer = gzip.layers[1]!;
    standin.use(statusStorm({ digest: layer.digest, status: 503 }));
    const c = await freshCase();
    await expectExit(c.pull('fixtures/gzip:latest'), 5);
    expect(standin.blobRequests(layer.digest)).toHaveLength(RETRIES + 1);
    c.expectUnchanged();
  });

  it('503 forever on the manifest → exit 5, store unchanged', async () => {
    standin.use(statusStorm({ path: /\/manifests\//, status: 503 }));
    const c = await freshCase();
    await expectExit(c.pull('fixtures/gzip:latest'), 5);
    c.expectUnchanged();
  });

  it('429 with Retry-After: 1 → waits at least a second, then succeeds', async () => {
    const layer = gzip.layers[0]!;
    standin.use(statusStorm({ digest: layer.digest, status: 429, times: 1, retryAfter: '1' }));
    const c = await freshCase();
    const report = await c.pull('fixtures/gzip:latest');
    const [refused, retried] = standin.blobRequests(layer.digest);
    expect(refused).toMatchObject({ status: 429 });
    expect(retried).toMatchObject({ status: 200 });
    expect(retried!.at - refused!.doneAt).toBeGreaterThanOrEqual(950);
    await expectContent(c, report, await gzipFiles());
  });
});

describe('bytes that do not match their digest', () => {
  it('a layer blob with one byte changed → exit 4, store unchanged', async () => {
    const layer = gzip.layers[0]!;
    standin.use(corruptBlob({ digest: layer.digest }));
    const c = await freshCase();
    const error = await expectExit(c.pull('fixtures/gzip:latest'), 4);
    expect(error.context.digest).toBe(layer.digest);
    c.expectUnchanged();
  });

  it('a layer blob with its last byte changed (decompresses, digest wrong) → exit 4, store unchanged', async () => {
    const layer = gzip.layers[0]!;
    standin.use(corruptBlob({ digest: layer.digest, offset: layer.size - 1 }));
    const c = await freshCase();
    await expectExit(c.pull('fixtures/gzip:latest'), 4);
    c.expectUnchanged();
  });

  it('a config blob with one byte changed → exit 4, store unchanged', async () => {
    standin.use(corruptBlob({ digest: gzip.config.digest }));
    const c = await freshCase();
    await expectExit(c.pull('fixtures/gzip:latest'), 4);
    c.expectUnchanged();
  });

  for (const declareLength of [true, false]) {
    it(`a manifest over 4 MiB (${declareLength ? 'Content-Length says so' : 'sent chunked'}) → exit 4, store unchanged`, async () => {
      standin.use(hugeManifest({ reference: 'huge', size: 4 * 1024 * 1024 + 4096, declareLength }));
      const c = await freshCase();
      const error = await expectExit(c.pull('fixtures/gzip:huge'), 4);
      expect(error.message).toMatch(/limit/);
      c.expectUnchanged();
    });
  }
});

describe('chunked metadata that does not verify', () => {
  const tocMiddle = () => {
    const position = v2Layer.annotations!['io.github.containers.zstd-chunked.manifest-position']!;
    const [offset, length] = position.split(':').map(Number);
    return offset! + Math.floor(length! / 2);
  };

  it('wrong bytes at the TOC position → toc-unverifiable, full pull, correct content', async () => {
    // Only range answers carry the bad byte (a cache serving a stale slice); the whole blob is intact.
    standin.use(corruptBlob({ digest: v2Layer.digest, offset: tocMiddle(), rangesOnly: true }));
    const c = await freshCase();
    const report = await c.pull('chunked/app:v2');
    const planned = strategy.plans.at(-1)!;
    expect(planned.layers[0]!.toc).toMatchObject({ state: 'unverifiable' });
    expect(planned.plan.layers[0]).toMatchObject({ method: 'full', reasons: ['toc-unverifiable'] });
    expect(report.layers[0]).toMatchObject({ method: 'full', reasons: ['toc-unverifiable'] });
    expect(layerFullGets(v2Layer.digest)).toHaveLength(1);
    await expectContent(c, report, chunkedTree(2));
  });

  it('wrong bytes at the TOC position under convert-only → exit 3 before any layer body is fetched, store unchanged', async () => {
    // docs/design.md §5: convert-only fails hard, before anything is committed, with exit 3 for a layer that
    // cannot go through the chunked pipeline; auto recovers from the same fact, so it is a mode
    // violation (3), not a verification failure (4).
    standin.use(corruptBlob({ digest: v2Layer.digest, offset: tocMiddle(), rangesOnly: true }));
    const c = await freshCase();
    const error = await expectExit(c.pull('chunked/app:v2', { mode: 'convert-only' }), 3);
    expect(error.message).toMatch(/toc-unverifiable/);
    expect(layerFullGets(v2Layer.digest)).toEqual([]);
    c.expectUnchanged();
  });

  it('a config whose DiffID the rebuilt tar does not match → toc-mismatch, full pull, then exit 4, store unchanged', async () => {
    // A doctored v2: same layer, config naming another DiffID. The partial rebuild is checked
    // against it, fails, and the executor asks the strategy module again (toc-mismatch → full); the
    // full pull cannot match it either, so the pull fails with nothing committed.
    const { doc } = await upstreamManifest('chunked/app', 'v2');
    const configRes = await fetch(`http://${upstream.host}/v2/chunked/app/blobs/${doc.config.digest}`);
    const config = JSON.parse(Buffer.from(await configRes.arrayBuffer()).toString()) as {
      rootfs: { diff_ids: string[] };
    };
    config.rootfs.diff_ids = [`sha256:${createHash('sha256').update('not this layer').digest('hex')}`];
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    const manifest = { ...doc, config: { ...doc.config, digest: configDigest, size: configBytes.length } };
    standin.use(
      serveBytes({
        path: '/v2/chunked/app/manifests/lying',
        bytes: Buffer.from(JSON.stringify(manifest)),
        contentType: 'application/vnd.oci.image.manifest.v1+json',
      }),
      serveBytes({
        path: `/v2/chunked/app/blobs/${configDigest}`,
        bytes: configBytes,
        contentType: 'application/octet-stream',
      }),
    );
    const c = await freshCase();
    await expectExit(c.pull('chunked/app:lying'), 4);
    expect(strategy.plans.at(-1)!.plan.layers[0]).toMatchObject({ method: 'partial' });
    const again = redecisionFor(v2Layer.digest);
    expect(again.facts.runtime?.diffIDMismatch).toBeDefined();
    expect(again.outcome).toMatchObject({ method: 'full', reasons: ['toc-mismatch'] });
    expect(layerFullGets(v2Layer.digest)).toHaveLength(1);
    c.expectUnchanged();
  });
});
