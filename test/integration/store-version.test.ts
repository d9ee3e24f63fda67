// The store's version (docs/store.md "Versions"): tar-split format 2 made a store this skiff writes
// unreadable to a skiff of store version 1, so such a store says version 2. A store of version 1
// (format-1 tar-splits) still opens and is read as it is, and says 2 once this skiff has committed a
// layer into it; a store of a version above ours is refused by name, not read as damage.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { compress } from 'zstd-napi';
import { readTarSplitSync } from '../../src/store/index.js';
import { runCli, tempDir } from '../harness/cli.js';

const registry = inject('registry');
const GZIP = `${registry}/fixtures/gzip:latest`;
// Layers of their own: a pull of it commits new layers into a store holding GZIP.
const OTHER = `${registry}/fixtures/multi:latest`;

const work = tempDir('skiff-store-version-');
afterAll(() => work.cleanup());
let counter = 0;
const fresh = (name: string) => path.join(work.dir, `${name}-${counter++}`);

const versionOf = (store: string) =>
  JSON.parse(fs.readFileSync(path.join(store, 'skiff-store.json'), 'utf8'));

function setVersion(store: string, version: number): void {
  fs.writeFileSync(
    path.join(store, 'skiff-store.json'),
    `${JSON.stringify({ format: 'skiff-store', version })}\n`,
  );
}

function layerDirs(store: string): string[] {
  const root = path.join(store, 'layers/sha256');
  return fs.readdirSync(root).map((hex) => path.join(root, hex));
}

/** Rewrites a committed tar-split as a skiff of store version 1 wrote it: JSON entries, no version frame. */
function toFormatOne(file: string): void {
  const frames: Buffer[] = [];
  for (const record of readTarSplitSync(file)) {
    const [kind, payload] = 'r' in record ? [0x72, record.r] : [0x65, Buffer.from(JSON.stringify(record.e))];
    const header = Buffer.alloc(5);
    header[0] = kind;
    header.writeUInt32LE(payload.length, 1);
    frames.push(header, payload);
  }
  fs.writeFileSync(file, compress(Buffer.concat(frames)));
}

const skiff = (args: string[], store: string) =>
  runCli([...args, '--store', store, ...(args[0] === 'pull' ? ['--progress', 'none'] : [])]);

async function ok(args: string[], store: string): Promise<void> {
  const result = await skiff(args, store);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.code, args.join(' ')).toBe(0);
}

describe('the store version', () => {
  it('is 2 in a store this skiff creates', async () => {
    const store = fresh('new');
    await ok(['pull', GZIP], store);
    expect(versionOf(store)).toEqual({ format: 'skiff-store', version: 2 });
  });

  it('a store of version 1 opens and is read as it is, and says 2 once this skiff commits a layer', async () => {
    const store = fresh('v1');
    await ok(['pull', GZIP], store);
    const old = layerDirs(store);
    const tarSplit = path.join(old[0] as string, 'tarsplit.jsonl.zst');
    toFormatOne(tarSplit);
    const formatOne = fs.readFileSync(tarSplit);
    setVersion(store, 1);

    // Read-only commands read it as it is and leave its version alone.
    await ok(['images'], store);
    await ok(['fsck'], store);
    await ok(['unpack', GZIP, path.join(fresh('rootfs'), 'tree')], store);
    expect(versionOf(store).version).toBe(1);

    // A pull that commits a new layer (format 2) raises the version; the old layer stays format 1.
    await ok(['pull', OTHER], store);
    expect(layerDirs(store).length).toBeGreaterThan(old.length);
    expect(versionOf(store)).toEqual({ format: 'skiff-store', version: 2 });
    expect(fs.readFileSync(tarSplit).equals(formatOne)).toBe(true);
    await ok(['fsck'], store);
  });

  it('a store of a newer version is refused by name in one line, exit 1, and left as it is', async () => {
    const store = fresh('v3');
    await ok(['pull', GZIP], store);
    setVersion(store, 3);
    const before = fs.readFileSync(path.join(store, 'skiff-store.json'));
    const layers = layerDirs(store);
    const line = `skiff: store ${store} was written by a newer skiff (store version 3); this one reads store versions 1 to 2\n`;
    for (const args of [['images'], ['fsck'], ['pull', OTHER]]) {
      const result = await skiff(args, store);
      expect(result.stderr, args.join(' ')).toBe(line);
      expect(result.code, args.join(' ')).toBe(1);
    }
    expect(fs.readFileSync(path.join(store, 'skiff-store.json')).equals(before)).toBe(true);
    expect(layerDirs(store)).toEqual(layers);
  });
});
