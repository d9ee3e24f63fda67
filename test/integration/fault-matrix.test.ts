// The fault matrix: every network fault the fault proxy makes, against the CLI as a user runs it
// (bin/run.js in a child process), several runs each because some of these used to fail only in
// some runs (a rejected promise nobody listened to yet crashed Node in 2–4 runs of 5). Every run
// must end in a documented exit code with one complete `skiff:` line naming the layer (and the
// chunk's file where a chunk is at fault), never an internal error or a stack trace, and a failed
// run leaves the store exactly as it was: no session file, no staging left behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom } from '../../fixtures/lib/trees.mjs';
import { pull } from '../../src/pull/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Store } from '../../src/store/index.js';
import { MODERN_SKOPEO, type Tree, writeTreeLayout } from '../harness/chunked-pair.js';
import { type CliResult, expectCleanStderr, runCli } from '../harness/cli.js';
import { type FaultProxy, type FaultRule, startFaultProxy } from '../harness/fault-proxy.js';
import { type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';
import { diffSnapshots, snapshotStore } from '../harness/snapshot.js';

/**
 * Runs per case. Bad chunk data used to crash in 2–4 runs of 5 (a race): those cases run 5 times;
 * the other faults inside a partial pull's answer 3 times, the rest twice.
 */
const RACY = 5;
const PARTIAL = 3;
const OTHER = 2;

let work: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
let template: string;
let layer: { digest: string; size: number; short: string };
let runCount = 0;

// A v1 → v2 pair whose changed files span many chunks and many socket reads: a chunk that fails
// while the rest of its range is still arriving is the case that used to crash.
const FILES = 8;
const FILE_SIZE = 384 * 1024;
const CHANGED = [1, 6];
const fileName = (i: number) => `data/big${i}.bin`;

function bigTree(version: 1 | 2): Tree {
  const tree: Tree = new Map();
  for (let i = 0; i < FILES; i++) {
    const seed = version === 2 && CHANGED.includes(i) ? `big-${i}-v2` : `big-${i}`;
    tree.set(fileName(i), pseudoRandom(seed, FILE_SIZE));
  }
  tree.set('etc/version', Buffer.from(`v${version}\n`));
  return tree;
}

async function pushBigPair(): Promise<void> {
  for (const version of [1, 2] as const) {
    await skopeoCopy(
      writeTreeLayout(work, `big-v${version}`, bigTree(version)),
      `docker://${registry.host}/chunked/big:v${version}`,
      ['--dest-compress', '--dest-compress-format', 'zstd:chunked'],
      MODERN_SKOPEO,
    );
  }
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-fault-matrix-'));
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  await pushBigPair();
  const res = await fetch(`http://${registry.host}/v2/chunked/big/manifests/v2`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const manifest = (await res.json()) as { layers: Array<{ digest: string; size: number }> };
  const [only] = manifest.layers;
  layer = { digest: only!.digest, size: only!.size, short: only!.digest.slice(0, 'sha256:'.length + 12) };
  // v1 in the store makes a pull of v2 partial: the TOC read, then one request for the two
  // changed files, far apart in the blob, as two ranges (a multipart answer).
  template = path.join(work, 'template');
  const client = new RegistryClient();
  try {
    await pull({ reference: `${registry.host}/chunked/big:v1`, store: await Store.open(template), client });
  } finally {
    await client.close();
  }
});

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

afterEach(() => {
  // A proxy that could not build its answer tested itself, not skiff.
  expect(proxy.errors).toEqual([]);
});

interface Run {
  result: CliResult;
  /** What changed in the store, as readable lines (empty: exactly as it was). */
  changes: string[];
  /** The GETs of the layer blob this run made. */
  gets: ReturnType<FaultProxy['blobGets']>;
}

/** One pull of v2 through the proxy with these faults, into a fresh copy of the template store. */
async function pullV2(rules: FaultRule[], flags: string[] = []): Promise<Run> {
  const store = path.join(work, `store-${++runCount}`);
  fs.cpSync(template, store, { recursive: true });
  const before = snapshotStore(store);
  proxy.set(...rules);
  const result = await runCli([
    'pull',
    '--store',
    store,
    '--retry-times',
    '2',
    '--retry-delay',
    '10',
    ...flags,
    `${proxy.host}/chunked/big:v2`,
  ]);
  const changes = diffSnapshots(before, snapshotStore(store));
  const gets = proxy.blobGets(layer.digest);
  fs.rmSync(store, { recursive: true, force: true });
  return { result, changes, gets };
}

/** A failed run: the exit code, one `skiff:` line naming the layer (and matching `cause`), the store untouched. */
function expectFailure(run: Run, exitCode: number, cause: RegExp): void {
  const line = expectCleanStderr(run.result);
  expect({ code: run.result.code, line }).toMatchObject({ code: exitCode });
  expect(line).toContain(layer.short);
  expect(line).toMatch(cause);
  expect(run.changes, 'the store is exactly as it was').toEqual([]);
}

/** A successful run: exit 0, nothing on stderr but progress, and the method the strategy chose. */
function expectSuccess(run: Run, method: 'partial' | 'full', reason = '-'): void {
  expectCleanStderr(run.result, { allowNone: true });
  expect(run.result.code, run.result.stderr).toBe(0);
  const row = run.result.stdout.split('\n').find((l) => l.startsWith(layer.short));
  expect(row, run.result.stdout).toBeDefined();
  expect(row!.split(/\s+/).slice(2, 4)).toEqual([method, reason]);
}

/** The chunk at fault is named by its file: one of the two files v2 changed. */
const CHANGED_FILE = new RegExp(`"(${CHANGED.map(fileName).join('|')})"`);

// A CLI run takes 1–15 s on a loaded 2-core machine: a minute per run is room, not a deadline.
const repeat = (name: string, body: () => Promise<void>, runs = OTHER) =>
  it(
    name,
    async () => {
      for (let i = 0; i < runs; i++) await body();
    },
    runs * 60_000,
  );

describe('faults inside one part of a multi-range answer (partial pull)', () => {
  for (const part of [0, 1]) {
    repeat(
      `a flipped byte in part ${part} → exit 4 naming the layer and the chunk's file`,
      async () => {
        const run = await pullV2([
          { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-flip', part } },
        ]);
        expectFailure(run, 4, CHANGED_FILE);
        expect(run.gets.filter((g) => g.range === undefined)).toEqual([]);
      },
      RACY,
    );

    repeat(
      `data shifted by 3 bytes in part ${part} → exit 4 naming the layer and the chunk's file`,
      async () => {
        const run = await pullV2([
          { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-shift', part, by: 3 } },
        ]);
        expectFailure(run, 4, CHANGED_FILE);
      },
      RACY,
    );
  }

  repeat(
    'a part labelled 16 bytes longer than its data → exit 4 naming the layer and the range',
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-mislabel', part: 0, how: 'grow' } },
      ]);
      expectFailure(run, 4, /Content-Range/);
    },
    PARTIAL,
  );

  repeat(
    "a part labelled with the next part's range → exit 4 naming the layer",
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-mislabel', part: 0, how: 'swap' } },
      ]);
      expectFailure(run, 4, /Content-Range|data\/big\d\.bin/);
    },
    RACY,
  );

  repeat(
    'a part labelled one byte off → the ranges are asked for one at a time (strategy: multi-range refused)',
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-mislabel', part: 1, how: 'shift' } },
      ]);
      expectSuccess(run, 'partial');
      const after = run.gets.slice(run.gets.findIndex((g) => g.fault !== undefined) + 1);
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((g) => g.range !== undefined && !g.range.includes(','))).toBe(true);
    },
    PARTIAL,
  );
});

describe('faults in one of several requests in flight', () => {
  repeat(
    'single ranges after a mislabelled part, one of them with a flipped byte → exit 4 naming the chunk, the store as it was once all requests settled',
    async () => {
      const run = await pullV2([
        // The multi-range request makes the strategy module ask for one range per request
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'part-mislabel', part: 1, how: 'shift' } },
        // … and the first of those (after the TOC read) carries a bad byte.
        { digest: layer.digest, on: 'range', skip: 1, times: 1, mode: { kind: 'flip' } },
      ]);
      expectFailure(run, 4, CHANGED_FILE);
      expect(run.gets.some((g) => g.fault === 'flip')).toBe(true);
    },
    PARTIAL,
  );
});

/** The request after the faulted one asks again for every range but the first, delivered and verified. */
function expectRetryWithoutFirstRange(run: Run): void {
  const faulted = run.gets.findIndex((g) => g.fault !== undefined);
  const [, ...rest] = run.gets[faulted]!.range!.replace(/^bytes=/, '').split(',');
  expect(run.gets[faulted + 1]?.range).toBe(`bytes=${rest.join(',')}`);
}

describe('faults in every range of a partial pull', () => {
  repeat(
    'a flipped byte in each range → exit 4 naming the layer and the chunk',
    async () => {
      const run = await pullV2([{ digest: layer.digest, on: 'multi-range', mode: { kind: 'flip' } }]);
      expectFailure(run, 4, CHANGED_FILE);
    },
    RACY,
  );

  repeat(
    'shifted data in each range → exit 4 naming the layer and the chunk',
    async () => {
      const run = await pullV2([{ digest: layer.digest, on: 'multi-range', mode: { kind: 'shift', by: 1 } }]);
      expectFailure(run, 4, CHANGED_FILE);
    },
    RACY,
  );

  repeat(
    'the multipart body cut short in its first part every time → exit 4 (truncated) after the retries',
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'truncate', keep: 300 } },
      ]);
      expectFailure(run, 4, /truncated/);
    },
    PARTIAL,
  );

  repeat(
    'a reset in the multipart body every time → exit 5 after the retries',
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'reset', afterBytes: 300 } },
      ]);
      expectFailure(run, 5, /range request failed/);
    },
    PARTIAL,
  );

  repeat('a reset in the second part once → the missing ranges again, partial pull succeeds', async () => {
    const run = await pullV2([
      {
        digest: layer.digest,
        on: 'multi-range',
        times: 1,
        mode: { kind: 'reset', afterBytes: FILE_SIZE + 4096 },
      },
    ]);
    expectSuccess(run, 'partial');
    expectRetryWithoutFirstRange(run);
  });

  repeat(
    'the multipart body cut short in its second part every time → the rest again, each retry further, partial pull succeeds',
    async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'multi-range', mode: { kind: 'truncate', keep: FILE_SIZE + 4096 } },
      ]);
      expectSuccess(run, 'partial');
      expectRetryWithoutFirstRange(run);
    },
  );

  it('503 on every file-range request → exit 5', async () => {
    const run = await pullV2([
      { digest: layer.digest, on: 'multi-range', mode: { kind: 'status', status: 503 } },
    ]);
    expectFailure(run, 5, /503/);
  });

  it('429 with Retry-After once → retried, partial pull succeeds', async () => {
    const run = await pullV2([
      {
        digest: layer.digest,
        on: 'multi-range',
        times: 1,
        mode: { kind: 'status', status: 429, retryAfter: '1' },
      },
    ]);
    expectSuccess(run, 'partial');
  });

  it('Range ignored on the file ranges (200, the whole blob) → full pull, no-range-support', async () => {
    const run = await pullV2([{ digest: layer.digest, on: 'multi-range', mode: { kind: 'ignore-range' } }]);
    expectSuccess(run, 'full', 'no-range-support');
  });
});

describe('faults in the TOC and tar-split read', () => {
  for (const lie of [
    { by: 1, grow: 0, what: 'shifted one byte' },
    { by: -1, grow: 1, what: 'one byte longer than the data' },
    { by: -1, grow: 0, what: 'starting one byte early' },
  ]) {
    repeat(`a Content-Range ${lie.what} → full pull, toc-unverifiable`, async () => {
      const run = await pullV2([
        { digest: layer.digest, on: 'range', mode: { kind: 'lie-range', by: lie.by, grow: lie.grow } },
      ]);
      expectSuccess(run, 'full', 'toc-unverifiable');
    });
  }

  it('a Content-Range shifted one byte under --mode convert-only → exit 3 naming the layer and toc-unverifiable', async () => {
    const run = await pullV2(
      [{ digest: layer.digest, on: 'range', mode: { kind: 'lie-range', by: 1 } }],
      ['--mode', 'convert-only'],
    );
    expectFailure(run, 3, /toc-unverifiable/);
    expect(run.gets.filter((g) => g.range === undefined)).toEqual([]);
  });

  it('a flipped byte in the TOC read → full pull, toc-unverifiable', async () => {
    const run = await pullV2([{ digest: layer.digest, on: 'range', times: 1, mode: { kind: 'flip' } }]);
    expectSuccess(run, 'full', 'toc-unverifiable');
  });
});

describe('faults in a full pull (--mode full)', () => {
  const full = ['--mode', 'full'];

  repeat('a flipped byte → exit 4 naming the layer', async () => {
    const run = await pullV2([{ digest: layer.digest, on: 'full', mode: { kind: 'flip' } }], full);
    expectFailure(run, 4, /digest|decompress/);
  });

  repeat('shifted bytes → exit 4 naming the layer', async () => {
    const run = await pullV2([{ digest: layer.digest, on: 'full', mode: { kind: 'shift', by: 2 } }], full);
    expectFailure(run, 4, /digest|decompress|zstd/);
  });

  it('a body that ends early every time → exit 4 naming the layer', async () => {
    const run = await pullV2(
      [{ digest: layer.digest, mode: { kind: 'truncate', keep: Math.floor(layer.size / 2) } }],
      full,
    );
    expectFailure(run, 4, /./);
  });

  it('a reset mid-body once → resumed with Range, succeeds', async () => {
    const run = await pullV2(
      [{ digest: layer.digest, on: 'full', times: 1, mode: { kind: 'reset', afterBytes: 1000 } }],
      full,
    );
    expectSuccess(run, 'full', 'mode-full');
    expect(run.gets[1]?.range).toBe('bytes=1000-');
  });

  it('a reset before any byte every time → exit 5 naming the layer', async () => {
    const run = await pullV2([{ digest: layer.digest, mode: { kind: 'reset' } }], full);
    expectFailure(run, 5, /./);
  });

  it('503 every time → exit 5 naming the layer', async () => {
    const run = await pullV2([{ digest: layer.digest, mode: { kind: 'status', status: 503 } }], full);
    expectFailure(run, 5, /503/);
  });

  it('429 with Retry-After once → succeeds', async () => {
    const run = await pullV2(
      [{ digest: layer.digest, times: 1, mode: { kind: 'status', status: 429, retryAfter: '1' } }],
      full,
    );
    expectSuccess(run, 'full', 'mode-full');
  });
});
