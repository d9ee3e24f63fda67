// Issue 11, item 10: SIZE is one quantity (the compressed size the manifest states) in pull, images
// and inspect, tables and JSON alike; FETCHED counts every byte asked for, the TOC and tar-split
// included, and says so where that makes it exceed SIZE.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../../src/util/present.js';
import { runCli, tempDir } from '../harness/cli.js';
import { FIXTURES } from '../harness/registry.js';

const LAYOUT = path.join(FIXTURES, 'chunked');
const REF = `oci:${LAYOUT}:latest`;

interface Layer {
  digest: string;
  size: number;
}

function blob(digest: string): Buffer {
  return fs.readFileSync(path.join(LAYOUT, 'blobs/sha256', digest.slice(7)));
}

/** The manifest's own statement of each layer's size. */
function manifestLayers(): Layer[] {
  const index = JSON.parse(fs.readFileSync(path.join(LAYOUT, 'index.json'), 'utf8'));
  return JSON.parse(blob(index.manifests[0].digest).toString()).layers;
}

const work = tempDir('skiff-sizes-');
afterAll(() => work.cleanup());
const store = path.join(work.dir, 'store');
const layers = manifestLayers();
const compressed = layers.reduce((sum, l) => sum + l.size, 0);

async function skiff(...args: string[]) {
  const result = await runCli([...args, '--store', store]);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.code, args.join(' ')).toBe(0);
  return result.stdout;
}

let report: {
  bytesFetched: number;
  layers: Array<Layer & { bytesFetched: number; tocBytesFetched: number; method: string; reasons: string[] }>;
};
beforeAll(async () => {
  report = JSON.parse(await skiff('pull', REF, '--json'));
});

describe('sizes and fetched bytes', () => {
  it('pull: SIZE is the manifest size; FETCHED is the TOC and tar-split plus the whole blob, and adds up', () => {
    expect(report.layers.map((l) => ({ digest: l.digest, size: l.size }))).toEqual(
      layers.map((l) => ({ digest: l.digest, size: l.size })),
    );
    for (const layer of report.layers) {
      // The fixture's layers are small: a partial pull would not save enough, so each is fetched
      // whole after its TOC was read.
      expect(layer).toMatchObject({ method: 'full', reasons: ['no-saving'] });
      expect(layer.tocBytesFetched).toBeGreaterThan(0);
      expect(layer.bytesFetched).toBe(layer.size + layer.tocBytesFetched);
    }
    expect(report.bytesFetched).toBe(report.layers.reduce((sum, l) => sum + l.bytesFetched, 0));
  });

  it('pull table: FETCHED and SIZE as in the JSON, and a note saying why FETCHED exceeds SIZE', async () => {
    const again = path.join(work.dir, 'again');
    const result = await runCli(['pull', REF, '--store', again]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[1]).toMatch(/^LAYER +FORMAT +METHOD +REASONS +FETCHED +SIZE +NOTE$/);
    for (const layer of report.layers) {
      const row = lines.find((line) => line.startsWith(layer.digest.slice(0, 19)));
      expect(row?.split(/ {2,}/)).toEqual([
        layer.digest.slice(0, 19),
        'zstd:chunked',
        'full',
        'no-saving',
        formatBytes(layer.bytesFetched),
        formatBytes(layer.size),
        `TOC+tar-split ${formatBytes(layer.tocBytesFetched)}, then no saving: fetched whole`,
      ]);
    }
    expect(result.stdout).toContain(
      `fetched ${formatBytes(report.bytesFetched)} of ${formatBytes(compressed)}`,
    );
  });

  it('a dry run counts the TOC it read as fetched, as the real run does', async () => {
    const dry = JSON.parse(
      (await runCli(['pull', REF, '--dry-run', '--json', '--store', path.join(work.dir, 'dry')])).stdout,
    );
    expect(dry.layers.map((l: { bytesFetched: number }) => l.bytesFetched)).toEqual(
      report.layers.map((l) => l.bytesFetched),
    );
  });

  it('images: SIZE is the same compressed size; UNPACKED is the layers’ tar size', async () => {
    const [image] = JSON.parse(await skiff('images', '--json'));
    expect(image.size).toBe(compressed);
    const saved = JSON.parse(await skiff('save', REF, `oci:${path.join(work.dir, 'saved')}`, '--json'));
    expect(image.unpackedSize).toBe(saved.bytesWritten);
    expect(image.unpackedSize).not.toBe(compressed);
    const table = (await skiff('images')).split('\n');
    expect(table[0]).toMatch(/ SIZE +UNPACKED /);
    expect(table[1]?.split(/ {2,}/).slice(4, 6)).toEqual([
      formatBytes(compressed),
      formatBytes(image.unpackedSize),
    ]);
  });

  it('inspect: SIZE is the same compressed size, in the store and at the source', async () => {
    for (const flags of [[], ['--remote']]) {
      const inspected = JSON.parse(await skiff('inspect', REF, '--json', ...flags));
      expect(inspected.location).toBe(flags.length ? 'source' : 'store');
      expect(inspected.layers.map((l: Layer) => l.size)).toEqual(layers.map((l) => l.size));
      const table = (await skiff('inspect', REF, ...flags)).split('\n');
      for (const layer of layers) {
        const row = table.find((line) => line.startsWith(layer.digest.slice(0, 19)));
        expect(row?.split(/ {2,}/)[1]).toBe(formatBytes(layer.size));
      }
    }
  });
});
