// Issue 3: partial pulls of zstd:chunked images from a real registry (bytes counted at a proxy in
// front of it), from a local OCI layout, and the older generation's refusal.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompress } from 'zstd-napi';
// @ts-expect-error: plain JS fixture library without type declarations
import { parsePlatform, writeImage, writeLayout } from '../../fixtures/lib/mkimage.mjs';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom, pseudoText } from '../../fixtures/lib/trees.mjs';
import { MODERN_SKOPEO, type Tree, writeTreeTar } from '../harness/chunked-pair.js';
import { runCli, tempDir } from '../harness/cli.js';
import { FIXTURES, type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';
import { diffSnapshots, snapshot, snapshotStore } from '../harness/snapshot.js';
import { type StandIn, startStandIn } from '../harness/standin.js';

const BIG = 24 * 1024 * 1024;
const PATCHES = [3_000_000, 11_000_000, 20_000_000];

/** v1 and v2 of the app layer: 300 files and a 24 MB file; v2 changes 3%, adds 5, removes 4, patches 3 regions. */
function appTree(version: 1 | 2): Tree {
  const tree: Tree = new Map();
  for (let i = 0; i < 300; i++) {
    if (version === 2 && i % 75 === 3) continue; // 4 removed
    const changed = version === 2 && i % 33 === 1; // 9 changed
    tree.set(
      `app/src/file-${String(i).padStart(3, '0')}.txt`,
      pseudoText(`partial-${i}${changed ? '-v2' : ''}`, 2_000 + ((i * 7919) % 18_000)),
    );
  }
  if (version === 2)
    for (let i = 0; i < 5; i++) tree.set(`app/src/added-${i}.txt`, pseudoText(`partial-added-${i}`, 5_000));
  const big = Buffer.from(pseudoRandom('partial-big', BIG));
  if (version === 2)
    for (const [n, at] of PATCHES.entries()) Buffer.from(pseudoRandom(`patch-${n}`, 4096)).copy(big, at);
  tree.set('app/data/big.bin', big);
  return tree;
}

/** The same second layer in both versions: reused in v2 under a different parent. */
function configTree(): Tree {
  return new Map([['etc/app.conf', Buffer.from('mode = production\n')]]);
}

const hasModernSkopeo = fs.existsSync(MODERN_SKOPEO);
let work: { dir: string; cleanup: () => void };
let registry: RunningRegistry;
let proxy: StandIn;
const layouts: Record<'v1' | 'v2', string> = { v1: '', v2: '' };

beforeAll(async () => {
  if (!hasModernSkopeo) return;
  work = tempDir('skiff-partial-');
  registry = await startRegistry();
  proxy = await startStandIn(registry.host);
  const config = writeTreeTar(work.dir, 'config', configTree(), 'posix');
  for (const version of [1, 2] as const) {
    const plain = path.join(work.dir, `v${version}-plain`);
    const app = writeTreeTar(work.dir, `app-v${version}`, appTree(version), 'posix');
    writeLayout(
      plain,
      [writeImage(plain, { platform: parsePlatform('linux/amd64'), layers: [app, config] })],
      'latest',
    );
    layouts[`v${version}`] = path.join(work.dir, `v${version}-chunked`);
    await skopeoCopy(
      `oci:${plain}:latest`,
      `oci:${layouts[`v${version}`]}:latest`,
      ['--dest-compress-format', 'zstd:chunked'],
      MODERN_SKOPEO,
    );
    await skopeoCopy(`oci:${layouts[`v${version}`]}:latest`, `docker://${registry.host}/app:v${version}`, [
      '--preserve-digests',
    ]);
  }
}, 300_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  work?.cleanup();
});

interface LayoutImage {
  layers: Array<{ digest: string; size: number; annotations: Record<string, string> }>;
  blob(digest: string): Buffer;
}

function readLayout(dir: string): LayoutImage {
  const blob = (digest: string) => fs.readFileSync(path.join(dir, 'blobs/sha256', digest.slice(7)));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  return { layers: manifest.layers, blob };
}

interface RawEntry {
  type: string;
  name: string;
  size?: number;
  digest?: string;
  offset?: number;
  endOffset?: number;
  chunkDigest?: string;
  chunkType?: string;
}

/** The TOC straight from the blob (no skiff code): a test's own reading of what is there. */
function rawToc(
  layout: LayoutImage,
  layerIndex: number,
): { entries: RawEntry[]; tocLength: number; tarSplitLength: number } {
  const layer = layout.layers[layerIndex]!;
  const [offset, length] = layer.annotations['io.github.containers.zstd-chunked.manifest-position']!.split(
    ':',
  ).map(Number) as [number, number];
  const tarSplitLength = Number(
    layer.annotations['io.github.containers.zstd-chunked.tarsplit-position']!.split(':')[1],
  );
  const blob = layout.blob(layer.digest);
  return {
    entries: JSON.parse(decompress(blob.subarray(offset, offset + length)).toString()).entries,
    tocLength: length,
    tarSplitLength,
  };
}

/**
 * Compressed bytes of v2's content that v1 does not hold: files whose digest v1 lacks, and within
 * them only chunks whose digest v1 lacks. Returns the total and the number of ranges.
 */
function neededBytes(v1: RawEntry[], v2: RawEntry[]): { bytes: number; ranges: number } {
  const v1Digests = new Set(v1.map((e) => e.digest).filter(Boolean));
  const v1Chunks = new Set(v1.map((e) => e.chunkDigest).filter(Boolean));
  let bytes = 0;
  let ranges = 0;
  for (let i = 0; i < v2.length; i++) {
    const e = v2[i]!;
    if (e.type !== 'reg' || !e.size || v1Digests.has(e.digest)) continue;
    const pieces = [e];
    for (let j = i + 1; v2[j]?.type === 'chunk'; j++) pieces.push(v2[j]!);
    pieces.forEach((piece, k) => {
      const end = k + 1 < pieces.length ? pieces[k + 1]!.offset! : e.endOffset!;
      const whole = pieces.length === 1;
      if (piece.chunkType === 'zeros' || (!whole && v1Chunks.has(piece.chunkDigest))) return;
      bytes += end - piece.offset!;
      ranges++;
    });
  }
  return { bytes, ranges };
}

async function pullJson(store: string, ref: string, ...flags: string[]) {
  const result = await runCli(['pull', ref, '--json', ...flags], { SKIFF_STORE: store });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

function servedFor(digest: string): number {
  return proxy.log
    .filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`))
    .reduce((sum, r) => sum + r.bytesSent, 0);
}

describe.skipIf(!hasModernSkopeo)('partial pulls from a registry', () => {
  it('pulls v2 after v1 fetching only what changed, proves the DiffID, and unpacks the exact tree', async () => {
    const store = path.join(work.dir, 'store');
    await pullJson(store, `${proxy.host}/app:v1`);
    const v1 = readLayout(layouts.v1);
    const v2 = readLayout(layouts.v2);
    const plan = await pullJson(store, `${proxy.host}/app:v2`, '--dry-run');
    proxy.reset();
    const report = await pullJson(store, `${proxy.host}/app:v2`);

    const [app, config] = report.layers;
    expect(app).toMatchObject({ method: 'partial', reasons: [], format: 'zstd:chunked' });
    // The second layer is the same as v1's, on a different parent: reused, nothing fetched.
    expect(config).toMatchObject({ method: 'reuse', reasons: ['reused'], bytesFetched: 0 });
    expect(servedFor(v2.layers[1]!.digest)).toBe(0);

    // What the registry served for v2's app layer, against what it had to: the changed files and
    // chunks, the TOC, the tar-split and the footer, plus multipart part headers (~150 bytes) and
    // the merging of ranges less than 256 bytes apart, per range.
    const served = servedFor(v2.layers[0]!.digest);
    const v1Toc = rawToc(v1, 0);
    const v2Toc = rawToc(v2, 0);
    const needed = neededBytes(v1Toc.entries, v2Toc.entries);
    const metadata = v2Toc.tocLength + 8 + v2Toc.tarSplitLength + 72;
    const overhead = needed.ranges * (256 + 200) + 2048;
    expect(served).toBeLessThanOrEqual(needed.bytes + metadata + overhead);
    expect(served).toBeGreaterThanOrEqual(needed.bytes);
    expect(served).toBeLessThan(v2.layers[0]!.size * 0.05);
    // The report counts the blob bytes received; the registry also sent multipart framing (part
    // headers and boundaries, under 200 bytes a part). The dry run knew the count before any body.
    expect(app.bytesFetched).toBeLessThanOrEqual(served);
    expect(served - app.bytesFetched).toBeLessThan(needed.ranges * 200 + 1024);
    expect(plan.layers[0]).toMatchObject({ method: 'partial', bytesFetched: app.bytesFetched });
    expect(plan.layers[0].bytesReused).toBe(app.bytesReused);

    const target = path.join(work.dir, 'rootfs-v2');
    expect((await runCli(['unpack', `${proxy.host}/app:v2`, target], { SKIFF_STORE: store })).code).toBe(0);
    const expected = path.join(work.dir, 'expected-v2');
    fs.cpSync(path.join(work.dir, 'app-v2-tree'), expected, { recursive: true });
    fs.cpSync(path.join(work.dir, 'config-tree'), expected, { recursive: true });
    expect(diffSnapshots(snapshot(expected), snapshot(target))).toEqual([]);

    // save rebuilds the partially pulled layer byte for byte: the original uncompressed tar.
    const saved = path.join(work.dir, 'saved-v2');
    expect(
      (await runCli(['save', `${proxy.host}/app:v2`, `oci:${saved}`], { SKIFF_STORE: store })).code,
    ).toBe(0);
    const tar = fs.readFileSync(path.join(work.dir, 'app-v2.tar'));
    const { createHash } = await import('node:crypto');
    const tarDigest = createHash('sha256').update(tar).digest('hex');
    expect(fs.existsSync(path.join(saved, 'blobs/sha256', tarDigest))).toBe(true);
  });

  it('pulls partially from a local OCI layout too (read by ranges from the file)', async () => {
    const store = path.join(work.dir, 'store-local');
    await pullJson(store, `oci:${layouts.v1}:latest`);
    const report = await pullJson(store, `oci:${layouts.v2}:latest`);
    expect(report.layers.map((l: { method: string }) => l.method)).toEqual(['partial', 'reuse']);
    expect(report.layers[0].bytesFetched).toBeLessThan(report.layers[0].size * 0.05);
    const target = path.join(work.dir, 'rootfs-local');
    expect((await runCli(['unpack', `oci:${layouts.v2}:latest`, target], { SKIFF_STORE: store })).code).toBe(
      0,
    );
    expect(
      fs.readFileSync(path.join(target, 'app/data/big.bin')).equals(appTree(2).get('app/data/big.bin')!),
    ).toBe(true);
  });

  it('reports per-layer TOCs in inspect', async () => {
    const result = await runCli(['inspect', '--remote', '--json', `${proxy.host}/app:v2`], {
      SKIFF_STORE: path.join(work.dir, 'store-inspect'),
    });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.layers[0]).toMatchObject({
      format: 'zstd:chunked',
      chunked: { kind: 'zstd:chunked', generation: 'current', tarSplit: true, partialPossible: true },
    });
    expect(report.layers[0].chunked.entries).toBeGreaterThan(300);
  });
});

describe('chunked formats without a tar-split', () => {
  it('pulls the older zstd:chunked generation in full, with reason no-tarsplit', async () => {
    const { dir, cleanup } = tempDir('skiff-legacy-');
    try {
      const report = await pullJson(
        path.join(dir, 'store'),
        `oci:${path.join(FIXTURES, 'chunked-legacy')}:latest`,
      );
      expect(report.layers.map((l: { method: string; reasons: string[] }) => [l.method, l.reasons])).toEqual([
        ['full', ['no-tarsplit']],
        ['full', ['no-tarsplit']],
      ]);
    } finally {
      cleanup();
    }
  });

  it('pulls eStargz (gzip and zstd) in full, with reason no-tarsplit', async () => {
    const { dir, cleanup } = tempDir('skiff-estargz-');
    try {
      for (const fixture of ['estargz', 'estargz-zstd']) {
        const report = await pullJson(path.join(dir, 'store'), `oci:${path.join(FIXTURES, fixture)}:latest`);
        for (const layer of report.layers)
          expect(layer).toMatchObject({ format: 'estargz', method: 'full', reasons: ['no-tarsplit'] });
      }
    } finally {
      cleanup();
    }
  });

  it('refuses the older generation whose decompressed tar is not its DiffID: exit 4, both DiffIDs named, nothing committed', async () => {
    const { dir, cleanup } = tempDir('skiff-legacy-bad-');
    try {
      const store = path.join(dir, 'store');
      await pullJson(store, `oci:${path.join(FIXTURES, 'gzip')}:latest`);
      const before = snapshotStore(store);
      const layout = readLayout(path.join(FIXTURES, 'chunked-legacy-bad'));
      const config = JSON.parse(
        layout
          .blob(
            JSON.parse(
              layout
                .blob(
                  JSON.parse(fs.readFileSync(path.join(FIXTURES, 'chunked-legacy-bad/index.json'), 'utf8'))
                    .manifests[0].digest,
                )
                .toString(),
            ).config.digest,
          )
          .toString(),
      );
      const result = await runCli(
        ['pull', `oci:${path.join(FIXTURES, 'chunked-legacy-bad')}:latest`, '--mode', 'full'],
        {
          SKIFF_STORE: path.join(dir, 'fresh-store'),
        },
      );
      expect(result.code).toBe(4);
      const line = result.stderr.trim();
      expect(line.split('\n')).toHaveLength(1);
      expect(line).toContain('DiffID mismatch');
      expect(config.rootfs.diff_ids.some((d: string) => line.includes(d))).toBe(true);
      expect(layout.layers.some((l) => line.includes(l.digest.slice(0, 19)))).toBe(true);
      expect(fs.readdirSync(path.join(dir, 'fresh-store/layers/sha256'))).toEqual([]);
      // And a store that held something is left exactly as it was.
      const again = await runCli(['pull', `oci:${path.join(FIXTURES, 'chunked-legacy-bad')}:latest`], {
        SKIFF_STORE: store,
      });
      expect(again.code === 0 || again.code === 4).toBe(true);
      if (again.code === 4) expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
