// Issue 12: the copy engine on the in-memory transport, without a registry: the re-plan loop (a
// run-time fact goes back to the strategy module, and the loop is bounded), blob moves decided by
// the strategy module from the destination's capabilities (mount, or copy once a mount is
// declined), and the run-wide record that makes a shared blob cross the wire once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobLedger,
  copyBetween,
  copyToStore,
  MAX_REPLANS,
  ReplanLimitError,
  RuntimeFactError,
  runWithReplans,
  StoreDestination,
} from '../../src/copy/index.js';
import type { Digest } from '../../src/digest/index.js';
import { VerificationError } from '../../src/errors/index.js';
import type { ByteRange } from '../../src/ranges/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Store } from '../../src/store/index.js';
import {
  MemoryDestination,
  MemoryRegistry,
  MemorySource,
  type MemorySwitches,
} from '../harness/memory-transport.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');
/** Where demo-v2's only layer keeps its TOC and tar-split (its manifest's annotations): the blob's end. */
const DEMO_V2_METADATA_START = 836646;

let work: string;
let client: RegistryClient;

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-engine-'));
  client = new RegistryClient();
});

afterEach(async () => {
  await client.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function demoRegistry(switches: MemorySwitches = {}): MemoryRegistry {
  const registry = new MemoryRegistry('memory-a.test', switches);
  registry.loadLayout(path.join(FIXTURES, 'demo-v1'), 'demo/v1');
  registry.loadLayout(path.join(FIXTURES, 'demo-v2'), 'demo/v2');
  return registry;
}

async function pullInto(store: Store, registry: MemoryRegistry, repository: string) {
  const reference = registry.reference(repository);
  const source = new MemorySource(registry, reference);
  return copyToStore(source, new StoreDestination(store, reference), {
    reference: `${registry.host}/${repository}`,
  });
}

/** A store holding demo v1, so that v2's layer is a partial candidate. */
async function storeWithV1(registry: MemoryRegistry): Promise<Store> {
  const store = await Store.open(path.join(work, 'store'));
  const v1 = await pullInto(store, registry, 'demo/v1');
  expect(v1.layers.map((l) => l.method)).toEqual(['full']);
  return store;
}

const contentRanges = (ranges: readonly ByteRange[]) => ranges.some((r) => r.start < DEMO_V2_METADATA_START);

describe('the re-plan loop (store destination)', () => {
  it('pulls partially when the source serves ranges', async () => {
    const registry = demoRegistry();
    const store = await storeWithV1(registry);
    const v2 = await pullInto(store, registry, 'demo/v2');
    expect(v2.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
    expect(v2.layers[0]!.bytesFetched).toBeLessThan(v2.layers[0]!.size / 2);
  });

  it('takes ranges the source turns out to ignore back to the strategy module: full, no-range-support', async () => {
    const registry = demoRegistry();
    const store = await storeWithV1(registry);
    // Metadata is served (so the plan is partial); the contents' ranges are answered whole.
    registry.switches.ranges = (ranges) => (contentRanges(ranges) ? 'ignore' : 'serve');
    const v2 = await pullInto(store, registry, 'demo/v2');
    const layer = v2.layers[0]!;
    expect(layer).toMatchObject({ method: 'full', reasons: ['no-range-support'] });
    // The TOC and tar-split read to plan the partial pull are counted beside the whole blob.
    expect(layer.tocBytesFetched).toBeGreaterThan(0);
    expect(layer.bytesFetched).toBe(layer.size + layer.tocBytesFetched);
    expect(await store.hasCompleteLayer(layer.diffID!)).toBe(true);
  });

  it('asks for one range per request once the source refuses several, and stays partial', async () => {
    const registry = demoRegistry();
    const store = await storeWithV1(registry);
    registry.switches.ranges = (ranges) => (contentRanges(ranges) ? 'refuse-multi' : 'serve');
    const v2 = await pullInto(store, registry, 'demo/v2');
    expect(v2.layers[0]).toMatchObject({ method: 'partial', reasons: [] });
  });

  it('is bounded: a layer that keeps raising run-time facts fails as a bug, naming the layer', async () => {
    let attempts = 0;
    const run = runWithReplans('first', {
      what: 'layer sha256:feed',
      attempt: async () => {
        attempts++;
        throw new RuntimeFactError({ rangesIgnored: true }, 'ranges ignored');
      },
      replan: () => 'again',
    });
    await expect(run).rejects.toThrow(ReplanLimitError);
    await expect(run).rejects.toThrow(/layer sha256:feed: re-planned 4 times without settling/);
    expect(attempts).toBe(MAX_REPLANS + 1);
  });

  it('passes a failure that is no run-time fact straight through, without re-planning', async () => {
    let replans = 0;
    const run = runWithReplans(0, {
      what: 'layer x',
      attempt: async () => {
        throw new Error('disk on fire');
      },
      replan: () => ++replans,
    });
    await expect(run).rejects.toThrow('disk on fire');
    expect(replans).toBe(0);
  });
});

describe('failures leave nothing visible', () => {
  it('a layer that fails in a copy to the store commits nothing of the image', async () => {
    const registry = demoRegistry();
    const store = await Store.open(path.join(work, 'store'));
    const manifest = JSON.parse(
      (await new MemorySource(registry, registry.reference('demo/v1')).getManifest()).bytes.toString(),
    );
    const diffID = JSON.parse(registry.blobs.get(manifest.config.digest)!.toString()).rootfs.diff_ids[0];
    registry.switches.fault = (operation, digest) => {
      if (operation === 'blob' && digest === manifest.layers[0].digest)
        throw new VerificationError('injected: the blob is damaged', { digest });
    };
    await expect(pullInto(store, registry, 'demo/v1')).rejects.toMatchObject({ exitCode: 4 });
    expect(await store.hasCompleteLayer(diffID)).toBe(false);
    // The same pull without the fault commits it: the check above can fail.
    registry.switches.fault = undefined;
    await pullInto(store, registry, 'demo/v1');
    expect(await store.hasCompleteLayer(diffID)).toBe(true);
  });
});

describe('blob moves (blob destinations)', () => {
  function destinations(switches: MemorySwitches = {}) {
    const source = new MemoryRegistry('memory-a.test');
    source.loadLayout(path.join(FIXTURES, 'gzip'), 'fixtures/gzip');
    const target = new MemoryRegistry('memory-b.test', switches);
    const copy = (from: MemoryRegistry, repository: string, to: string, ledger?: BlobLedger) =>
      copyBetween(
        new MemorySource(from, from.reference(repository)),
        new MemoryDestination(target, target.reference(to)),
        { client, ledger },
      );
    return { source, target, copy };
  }

  it('copies, then mounts within the destination registry; copies once the registry declines the mount', async () => {
    const { source, target, copy } = destinations();
    const first = await copy(source, 'fixtures/gzip', 'mirror/gzip');
    expect(first.error).toBeUndefined();
    expect(first).toMatchObject({ blobsCopied: 3, blobsMounted: 0 });
    const mounted = await copy(target, 'mirror/gzip', 'other/gzip');
    expect(mounted).toMatchObject({ blobsCopied: 0, blobsMounted: 3 });

    target.switches.mount = false;
    const declined = await copy(target, 'mirror/gzip', 'third/gzip');
    expect(declined).toMatchObject({ blobsCopied: 3, blobsMounted: 0 });
    expect(target.counts.mountsDeclined).toBe(3);
  });

  it('an upload that fails fails the image, and no manifest at the destination names it', async () => {
    const { source, target, copy } = destinations({
      fault: (operation) => {
        if (operation === 'put-blob') throw new VerificationError('injected: upload refused');
      },
    });
    const result = await copy(source, 'fixtures/gzip', 'mirror/gzip');
    expect(result.error?.exitCode).toBe(4);
    expect(target.manifests.size).toBe(0);
  });

  it('with a run-wide record, items sharing blobs upload each once and skip or mount it after', async () => {
    const { source, target, copy } = destinations();
    const ledger = new BlobLedger();
    const results = await Promise.all([
      copy(source, 'fixtures/gzip', 'shared/one', ledger),
      copy(source, 'fixtures/gzip', 'shared/one', ledger),
      copy(source, 'fixtures/gzip', 'shared/two', ledger),
      copy(source, 'fixtures/gzip', 'shared/three', ledger),
    ]);
    for (const result of results) expect(result.error).toBeUndefined();
    const sum = (key: 'blobsCopied' | 'blobsSkipped' | 'blobsMounted') =>
      results.reduce((n, r) => n + r[key], 0);
    expect(sum('blobsCopied')).toBe(3);
    expect(sum('blobsSkipped') + sum('blobsMounted')).toBe(9);
    expect(target.counts.blobWrites).toBe(3);
    expect(source.counts.blobReads).toBe(3);
  });
});

describe('manifest PUTs through the run-wide record', () => {
  const where = new MemoryRegistry('memory-c.test').reference('one/multi');
  const digest = `sha256:${'a'.repeat(64)}` as Digest;

  /** A PUT held open until released, recording how many PUTs of the manifest overlap. */
  function puts() {
    const log: string[] = [];
    let open = 0;
    const releases: Array<(ok: boolean) => void> = [];
    const put = (name: string) => () => {
      log.push(`${name} start${open > 0 ? ' (overlapping)' : ''}`);
      open++;
      return new Promise<void>((resolve, reject) => {
        releases.push((ok) => {
          open--;
          log.push(`${name} end`);
          if (ok) resolve();
          else reject(new Error(`${name} refused`));
        });
      });
    };
    return { log, put, release: (ok = true) => releases.shift()!(ok) };
  }

  it('one PUT of a digest at a time: a later child skips it, a later tag waits for it', async () => {
    const ledger = new BlobLedger();
    const { log, put, release } = puts();
    const first = ledger.putManifest(where, digest, false, put('first child'));
    const child = ledger.putManifest(where, digest, false, put('second child'));
    const tag = ledger.putManifest(where, digest, true, put('tag'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual(['first child start']);
    release();
    expect(await first).toBe(true);
    expect(await child).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    release();
    expect(await tag).toBe(true);
    expect(log).toEqual(['first child start', 'first child end', 'tag start', 'tag end']);
  });

  it('a failed PUT gives way to the next, which PUTs itself', async () => {
    const ledger = new BlobLedger();
    const { log, put, release } = puts();
    const first = ledger.putManifest(where, digest, false, put('first'));
    const second = ledger.putManifest(where, digest, false, put('second'));
    await new Promise((resolve) => setImmediate(resolve));
    release(false);
    await expect(first).rejects.toThrow('first refused');
    await new Promise((resolve) => setImmediate(resolve));
    release();
    expect(await second).toBe(true);
    expect(log).toEqual(['first start', 'first end', 'second start', 'second end']);
  });
});
