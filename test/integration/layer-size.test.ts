// Issue 10, defect 7: a layer's decompressed size is bounded (a small gzip of zeros must not fill
// the disk): by --max-layer-size where nothing verified says how big its tar is.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarSizeBound } from '../../src/copy/store/layer-full.js';
import type { Digest } from '../../src/digest/index.js';
import { TarSizeCap } from '../../src/formats/compression.js';
import { detectLayerFormat, type ZstdChunkedInfo } from '../../src/formats/detect.js';
import { metadataRanges, parseChunkedMetadata } from '../../src/formats/zstd-chunked.js';
import { parseSize } from '../../src/util/quantities.js';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { diffSnapshots, snapshotStore } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

let work: { dir: string; cleanup: () => void };
let store: string;
let bomb: ReturnType<typeof writeTestLayout>;

beforeAll(async () => {
  work = tempDir('skiff-layer-size-');
  store = path.join(work.dir, 'store');
  const seed = writeTestLayout(path.join(work.dir, 'seed'), {
    layers: [{ tar: makeTar([{ name: 'etc/seed', content: 'seed\n' }]) }],
  });
  expect((await runCli(['pull', `oci:${seed.dir}:latest`], { SKIFF_STORE: store })).code).toBe(0);
  // 32 MiB of zeros: about 32 kB of gzip.
  const zeros = makeTar([{ name: 'zeros', content: Buffer.alloc(32 * 1024 * 1024) }]);
  bomb = writeTestLayout(path.join(work.dir, 'bomb'), { layers: [{ tar: zeros }] });
  expect(fs.statSync(bomb.layers[0]!.file).size).toBeLessThan(100 * 1024);
});
afterAll(() => work.cleanup());

describe('a layer that decompresses past --max-layer-size', () => {
  it('pull: exit 4 naming the layer and the limit, nothing committed, staging gone', async () => {
    const before = snapshotStore(store);
    const ref = `oci:${bomb.dir}:latest`;
    const result = await runCli(['pull', '--max-layer-size', '1MiB', ref], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(4);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toContain(bomb.layers[0]!.digest);
    expect(lines[0]).toContain('more than 1048576 bytes, the limit set by --max-layer-size');
    expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([]);
    expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
  });

  it('pull under the default limit succeeds', async () => {
    const result = await runCli(['pull', `oci:${bomb.dir}:latest`], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(0);
  });

  it('mirror --convert: exit 4 naming the layer and the limit, nothing written', async () => {
    const destination = path.join(work.dir, 'converted');
    const result = await runCli([
      'mirror',
      '--convert',
      'zstd',
      '--max-layer-size',
      '2MB',
      `oci:${bomb.dir}:latest`,
      `oci:${destination}:latest`,
    ]);
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(bomb.layers[0]!.digest.slice(0, 19));
    expect(result.stderr).toContain('more than 2000000 bytes, the limit set by --max-layer-size');
    expect(fs.existsSync(path.join(destination, 'index.json'))).toBe(false);
  });

  it('a size that is not one: exit 1 naming the flag', async () => {
    const result = await runCli(['pull', '--max-layer-size', 'lots', `oci:${bomb.dir}:latest`], {
      SKIFF_STORE: store,
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'skiff: --max-layer-size "lots" is not a size (e.g. 500MB, 10GiB, 1048576)',
    );
  });
});

describe("a chunked layer's tar is bounded by its verified tar-split", () => {
  const fixture = (name: string) => path.resolve(import.meta.dirname, '../../fixtures/images', name);
  const read = (dir: string, digest: string) =>
    fs.readFileSync(path.join(dir, 'blobs/sha256', digest.slice(7)));
  const manifestOf = (dir: string) => {
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
    return JSON.parse(read(dir, index.manifests[0].digest).toString('utf8'));
  };

  it('gives the exact size of the tar, unless the run caught the TOC out, and never more than the cap', () => {
    const chunked = fixture('chunked');
    const plain = fixture('plain');
    const tars = manifestOf(plain).layers.map((l: { digest: string }) => read(plain, l.digest));
    for (const [i, layer] of manifestOf(chunked).layers.entries()) {
      const blob = read(chunked, layer.digest);
      const info = detectLayerFormat(layer).chunked as ZstdChunkedInfo;
      const fetched = metadataRanges(info, layer.size).map((r) => ({
        start: r.start,
        bytes: blob.subarray(r.start, r.end),
      }));
      const metadata = parseChunkedMetadata(info, layer.size, fetched);
      const cap = 1024 ** 3;
      expect(tarSizeBound(metadata, undefined, cap)).toEqual({
        bytes: tars[i].length,
        by: 'its verified tar-split',
      });
      expect(tarSizeBound(metadata, { tocUnverifiable: 'x' }, cap)).toEqual({
        bytes: cap,
        by: '--max-layer-size',
      });
      expect(tarSizeBound(metadata, undefined, 1000)).toEqual({ bytes: 1000, by: '--max-layer-size' });
    }
  });

  it('a chunked layer pulled in full (nothing to reuse) is written within it', async () => {
    const result = await runCli(['pull', '--json', `oci:${fixture('chunked')}:latest`], {
      SKIFF_STORE: path.join(work.dir, 'chunked-store'),
    });
    expect(result.code, result.stderr).toBe(0);
    const layers: Array<{ method: string; reasons: string[] }> = JSON.parse(result.stdout).layers;
    expect(layers.map((l) => [l.method, l.reasons])).toEqual([
      ['full', ['no-saving']],
      ['full', ['no-saving']],
    ]);
  });
});

describe('a partial pull whose TOC and tar-split describe more than --max-layer-size', () => {
  it('exit 4 naming the layer and the limit before anything is fetched or written', async () => {
    const partialStore = path.join(work.dir, 'partial-store');
    const images = path.resolve(import.meta.dirname, '../../fixtures/images');
    const v1 = `oci:${path.join(images, 'demo-v1')}:latest`;
    const v2 = `oci:${path.join(images, 'demo-v2')}:latest`;
    expect((await runCli(['pull', v1], { SKIFF_STORE: partialStore })).code).toBe(0);
    const plan = await runCli(['pull', '--dry-run', '--json', v2], { SKIFF_STORE: partialStore });
    const layers: Array<{ method: string; digest: string }> = JSON.parse(plan.stdout).layers;
    expect(layers.map((l) => l.method)).toEqual(['partial']);
    const before = snapshotStore(partialStore);
    const result = await runCli(['pull', '--max-layer-size', '100KiB', v2], { SKIFF_STORE: partialStore });
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(layers[0]!.digest);
    expect(result.stderr).toContain('more than 102400 bytes, the limit set by --max-layer-size');
    expect(diffSnapshots(before, snapshotStore(partialStore))).toEqual([]);
  });
});

describe('TarSizeCap', () => {
  it('hands on at most the bound, then fails', async () => {
    const digest = `sha256:${'ab'.repeat(32)}` as Digest;
    let passed = 0;
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => {
      passed += chunk.length;
    });
    const chunks = Array.from({ length: 10 }, () => Buffer.alloc(300));
    const run = pipeline(Readable.from(chunks), new TarSizeCap({ bytes: 1000, by: 'a test' }, digest), sink);
    await expect(run).rejects.toThrow(
      `layer ${digest} decompresses to more than 1000 bytes, the limit set by a test`,
    );
    expect(passed).toBe(900);
  });
});

describe('parseSize', () => {
  it('reads decimal and binary units and plain bytes', () => {
    expect(parseSize('10GiB', 'f')).toBe(10 * 1024 ** 3);
    expect(parseSize('500MB', 'f')).toBe(500_000_000);
    expect(parseSize('64g', 'f')).toBe(64 * 1024 ** 3);
    expect(parseSize('1.5KiB', 'f')).toBe(1536);
    expect(parseSize('1048576', 'f')).toBe(1048576);
    for (const bad of ['', '0', '-1', '10 parsecs', 'GiB'])
      expect(() => parseSize(bad, 'f')).toThrow(/not a size/);
  });
});
