// Issue 2: full pulls from a real registry into the store, read back by unpack and save.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { expectedFixtureRootfs } from '../harness/expected-trees.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';

const execFileAsync = promisify(execFile);
const registry = inject('registry');
const PLATFORMS = ['linux/arm/v6', 'linux/amd64', 'linux/arm64/v8', 'linux/arm/v7', 'linux/s390x'];

let expected: string;
const cleanups: Array<() => void> = [];
beforeAll(() => {
  expected = expectedFixtureRootfs();
});
afterAll(() => {
  fs.rmSync(expected, { recursive: true, force: true });
  for (const c of cleanups) c();
});

function freshStore(): string {
  const { dir, cleanup } = tempDir('skiff-store-');
  cleanups.push(cleanup);
  return dir;
}

async function pullJson(store: string, ref: string, ...flags: string[]) {
  const result = await runCli(['pull', ref, '--json', ...flags], { SKIFF_STORE: store });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout);
}

describe('pull from a real registry', () => {
  for (const [fixture, format] of [
    ['gzip', 'gzip'],
    ['zstd', 'zstd'],
    ['plain', 'tar'],
    ['v2s2', 'gzip'],
  ] as const) {
    it(`pulls the ${fixture} image and unpacks exactly the tree it was built from`, async () => {
      const store = freshStore();
      const report = await pullJson(store, `${registry}/fixtures/${fixture}:latest`);
      expect(report.platform).toBe('linux/amd64');
      expect(report.layers).toHaveLength(2);
      for (const layer of report.layers) {
        expect(layer).toMatchObject({ format, method: 'full', reasons: ['not-chunked'] });
        expect(layer.bytesFetched).toBe(layer.size);
      }
      const target = path.join(store, '..', `${path.basename(store)}-rootfs`);
      cleanups.push(() => fs.rmSync(target, { recursive: true, force: true }));
      const unpacked = await runCli(['unpack', `${registry}/fixtures/${fixture}:latest`, target], {
        SKIFF_STORE: store,
      });
      expect(unpacked.code).toBe(0);
      expect(diffSnapshots(snapshot(expected, { mtimes: true }), snapshot(target, { mtimes: true }))).toEqual(
        [],
      );
    });
  }

  it('reuses every layer on a second pull and across encodings of the same image', async () => {
    const store = freshStore();
    await pullJson(store, `${registry}/fixtures/gzip:latest`);
    for (const fixture of ['gzip', 'zstd', 'v2s2']) {
      const report = await pullJson(store, `${registry}/fixtures/${fixture}:latest`);
      expect(report.layers.map((l: { method: string; reasons: string[] }) => [l.method, l.reasons])).toEqual([
        ['reuse', ['reused']],
        ['reuse', ['reused']],
      ]);
      expect(report.bytesFetched).toBe(0);
    }
    const images = JSON.parse((await runCli(['images', '--json'], { SKIFF_STORE: store })).stdout);
    expect(images).toHaveLength(1);
    expect(images[0].names).toHaveLength(3);
  });

  it('pulls with --mode full and says so', async () => {
    const report = await pullJson(freshStore(), `${registry}/fixtures/zstd:latest`, '--mode', 'full');
    expect(report.layers.map((l: { reasons: string[] }) => l.reasons)).toEqual([
      ['mode-full', 'not-chunked'],
      ['mode-full', 'not-chunked'],
    ]);
  });

  it('selects each platform of an index, and only the one asked for', async () => {
    const store = freshStore();
    for (const platform of PLATFORMS) {
      const report = await pullJson(store, `${registry}/fixtures/multi:latest`, '--platform', platform);
      expect(report.platform).toBe(platform);
      const target = path.join(store, '..', `${path.basename(store)}-${platform.replaceAll('/', '-')}`);
      cleanups.push(() => fs.rmSync(target, { recursive: true, force: true }));
      expect((await runCli(['unpack', report.configDigest, target], { SKIFF_STORE: store })).code).toBe(0);
      expect(fs.readFileSync(path.join(target, 'etc/platform'), 'utf8')).toBe(`${platform}\n`);
    }
    // arm without a variant means the best available: v7; arm64 without one means v8.
    expect(
      (await pullJson(store, `${registry}/fixtures/multi:latest`, '--platform', 'linux/arm')).platform,
    ).toBe('linux/arm/v7');
    expect(
      (await pullJson(store, `${registry}/fixtures/multi:latest`, '--platform', 'linux/arm64')).platform,
    ).toBe('linux/arm64/v8');
  });

  it('refuses a platform the index does not offer, listing what it offers (exit 2)', async () => {
    const store = freshStore();
    const result = await runCli(
      ['pull', `${registry}/fixtures/multi:latest`, '--platform', 'linux/riscv64'],
      { SKIFF_STORE: store },
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('linux/riscv64');
    for (const p of PLATFORMS) expect(result.stderr).toContain(p);
  });

  it('pulls by digest; a digest the registry does not have is not found (exit 2)', async () => {
    const store = freshStore();
    const byTag = await pullJson(store, `${registry}/fixtures/gzip:latest`);
    const byDigest = await pullJson(freshStore(), `${registry}/fixtures/gzip@${byTag.manifestDigest}`);
    expect(byDigest.manifestDigest).toBe(byTag.manifestDigest);
    const wrong = `sha256:${'0'.repeat(64)}`;
    const result = await runCli(['pull', `${registry}/fixtures/gzip@${wrong}`], {
      SKIFF_STORE: freshStore(),
    });
    expect(result.code).toBe(2);
  });
});

describe('save', () => {
  it('writes layers that hash to the config DiffIDs, in a layout skopeo accepts', async () => {
    const store = freshStore();
    await pullJson(store, `${registry}/fixtures/zstd:latest`);
    const out = path.join(store, '..', `${path.basename(store)}-saved`);
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const saved = await runCli(['save', `${registry}/fixtures/zstd:latest`, `oci:${out}:v1`, '--json'], {
      SKIFF_STORE: store,
    });
    expect(saved.code).toBe(0);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
    const blob = (d: string) => fs.readFileSync(path.join(out, 'blobs/sha256', d.slice(7)));
    const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
    const config = JSON.parse(blob(manifest.config.digest).toString());
    const hashes = manifest.layers.map(
      (l: { digest: string }) => `sha256:${createHash('sha256').update(blob(l.digest)).digest('hex')}`,
    );
    expect(hashes).toEqual(config.rootfs.diff_ids);
    const { stdout } = await execFileAsync('skopeo', ['inspect', `oci:${out}:v1`]);
    expect(JSON.parse(stdout).Layers).toEqual(config.rootfs.diff_ids);
  });
});

describe('a damaged store', () => {
  it('refuses to unpack a layer whose tar-split or pack is missing or corrupt (exit 4, naming the file)', async () => {
    const store = freshStore();
    const report = await pullJson(store, `${registry}/fixtures/gzip:latest`);
    const diffID: string = report.layers[0].diffID;
    const tarsplit = path.join(store, 'layers/sha256', diffID.slice(7), 'tarsplit.jsonl.zst');
    const intact = fs.readFileSync(tarsplit);
    const target = path.join(store, '..', `${path.basename(store)}-rootfs`);
    cleanups.push(() => fs.rmSync(target, { recursive: true, force: true }));
    const damage = [
      () => fs.rmSync(tarsplit),
      () => fs.writeFileSync(tarsplit, Buffer.from('not zstd at all')),
      () => fs.writeFileSync(tarsplit, intact.subarray(0, intact.length - 7)),
    ];
    for (const [i, harm] of damage.entries()) {
      fs.rmSync(tarsplit, { force: true });
      fs.writeFileSync(tarsplit, intact);
      harm();
      fs.rmSync(target, { recursive: true, force: true });
      const damaged = snapshot(store);
      const result = await runCli(['unpack', report.configDigest, target], { SKIFF_STORE: store });
      expect(result.code, `damage ${i}: ${result.stderr}`).toBe(4);
      // The refusal writes nothing: the store is as it was, and no half-unpacked tree is left.
      expect(diffSnapshots(damaged, snapshot(store)), `damage ${i}`).toEqual([]);
      expect(fs.existsSync(target), `damage ${i}`).toBe(false);
      expect(result.stderr.trim().split('\n'), `damage ${i}`).toHaveLength(1);
      expect(result.stderr).toContain(tarsplit);
    }
    fs.writeFileSync(tarsplit, intact);
    // A pack the pack index names but the disk lacks: the same verdict, naming the pack.
    const packs = fs.readdirSync(path.join(store, 'packs')).filter((f) => f.endsWith('.pack'));
    expect(packs.length).toBeGreaterThan(0);
    for (const pack of packs) fs.rmSync(path.join(store, 'packs', pack));
    fs.rmSync(target, { recursive: true, force: true });
    const result = await runCli(['unpack', report.configDigest, target], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toMatch(/packs\/[^ ]+\.pack: object file missing \(store damaged\?\)/);
  });
});
