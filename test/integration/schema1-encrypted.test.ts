// Issue 4: schema1 and encrypted images from registries, dir: and oci: sources. Each pulls to the
// tree it was built from with the right reasons, fails with exit 3 under convert-only, and (for
// keys) with exit 4 — the store unchanged whenever a pull fails.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { expectedFixtureRootfs } from '../harness/expected-trees.js';
import { FIXTURES, skopeoCopy } from '../harness/registry.js';
import { diffSnapshots, snapshot, snapshotStore } from '../harness/snapshot.js';

const registry = inject('registry');
const KEYS = path.resolve(FIXTURES, '../keys');
let work: { dir: string; cleanup: () => void };
let expected: string;
let counter = 0;

beforeAll(async () => {
  work = tempDir('skiff-issue4-');
  expected = expectedFixtureRootfs();
  await skopeoCopy(`dir:${FIXTURES}/schema1`, `docker://${registry}/issue4/schema1:signed`);
  await skopeoCopy(`oci:${FIXTURES}/encrypted-rsa:latest`, `docker://${registry}/issue4/encrypted:rsa`, [
    '--preserve-digests',
  ]);
  // skopeo writes the same encrypted image as a dir: layout too (copied as is, no key needed).
  await skopeoCopy(`oci:${FIXTURES}/encrypted-ec:latest`, `dir:${path.join(work.dir, 'encrypted-ec-dir')}`);
}, 120_000);
afterAll(() => {
  work?.cleanup();
  fs.rmSync(expected, { recursive: true, force: true });
});

function store(): string {
  return path.join(work.dir, `store-${counter++}`);
}

async function pull(storeDir: string, ref: string, ...flags: string[]) {
  const result = await runCli(['pull', ref, '--json', ...flags], { SKIFF_STORE: storeDir });
  return { ...result, report: result.code === 0 ? JSON.parse(result.stdout) : undefined };
}

async function expectTree(storeDir: string, ref: string) {
  const target = path.join(work.dir, `rootfs-${counter++}`);
  const result = await runCli(['unpack', ref, target], { SKIFF_STORE: storeDir });
  expect(result.code, result.stderr).toBe(0);
  expect(diffSnapshots(snapshot(expected, { mtimes: true }), snapshot(target, { mtimes: true }))).toEqual([]);
}

/** A pull that must fail: exit code, one line naming the layers, store byte-for-byte unchanged. */
async function expectRefused(
  storeDir: string,
  ref: string,
  exitCode: number,
  mentions: string[],
  ...flags: string[]
) {
  const seeded = await pull(storeDir, `oci:${FIXTURES}/multi:latest`, '--platform', 'linux/arm64');
  expect(seeded.code).toBe(0);
  const before = snapshotStore(storeDir);
  const result = await runCli(['pull', ref, ...flags], { SKIFF_STORE: storeDir });
  expect(result.code, result.stderr).toBe(exitCode);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  for (const m of mentions) expect(result.stderr).toContain(m);
  expect(diffSnapshots(before, snapshotStore(storeDir))).toEqual([]);
}

describe('schema1', () => {
  for (const [where, ref] of [
    ['a registry (signed)', () => `${registry}/issue4/schema1:signed`],
    ['dir: (signed)', () => `dir:${FIXTURES}/schema1`],
    ['dir: (unsigned)', () => `dir:${FIXTURES}/schema1-unsigned`],
  ] as const) {
    it(`pulls from ${where}: full, reason schema1, DiffIDs computed, the tree it was built from`, async () => {
      const s = store();
      const { report, code, stderr } = await pull(s, ref());
      expect(code, stderr).toBe(0);
      for (const layer of report.layers)
        expect(layer).toMatchObject({ method: 'full', reasons: ['not-chunked', 'schema1'] });
      const images = JSON.parse((await runCli(['images', '--json'], { SKIFF_STORE: s })).stdout);
      expect(images[0].diffIDsComputed).toBe(true);
      // The computed DiffIDs are the real ones: the same as the OCI image's config names.
      const plain = await pull(store(), `oci:${FIXTURES}/plain:latest`);
      expect(report.layers.map((l: { diffID: string }) => l.diffID)).toEqual(
        plain.report.layers.map((l: { diffID: string }) => l.diffID),
      );
      await expectTree(s, ref());
    });
  }

  it('skips throwaway layers and keeps the history of empty ones in the converted config', async () => {
    const s = store();
    const { report } = await pull(s, `dir:${FIXTURES}/schema1-throwaway`, '--platform', 'linux/arm64');
    expect(report.layers).toHaveLength(2);
    expect(report.platform).toBe('linux/arm64/v8');
    const inspected = JSON.parse(
      (await runCli(['inspect', report.configDigest, '--json'], { SKIFF_STORE: s })).stdout,
    );
    expect(inspected.layers).toHaveLength(2);
    const target = path.join(work.dir, `rootfs-${counter++}`);
    expect((await runCli(['unpack', report.configDigest, target], { SKIFF_STORE: s })).code).toBe(0);
    expect(fs.readdirSync(path.join(target, 'etc')).sort()).toEqual(['layer-a.txt', 'layer-b.txt']);
  });

  it('fails under convert-only with exit 3, every layer listed, the store unchanged', async () => {
    await expectRefused(
      store(),
      `dir:${FIXTURES}/schema1`,
      3,
      ['schema1', 'sha256:30f35d4bc53a', 'sha256:9d782630f11b'],
      '--mode',
      'convert-only',
    );
  });
});

describe('encrypted (ocicrypt, JWE)', () => {
  it('pulls from a registry with the RSA key: decrypted, reason encrypted, the tree it was built from', async () => {
    const s = store();
    const { report, code, stderr } = await pull(
      s,
      `${registry}/issue4/encrypted:rsa`,
      '--decryption-key',
      `jwe:${KEYS}/rsa.pem`,
    );
    expect(code, stderr).toBe(0);
    for (const layer of report.layers)
      expect(layer).toMatchObject({ format: 'encrypted', method: 'full', reasons: ['encrypted'] });
    await expectTree(s, `${registry}/issue4/encrypted:rsa`);
  });

  it('pulls from oci: with the EC key, and from dir:', async () => {
    for (const ref of [
      `oci:${FIXTURES}/encrypted-ec:latest`,
      `dir:${path.join(work.dir, 'encrypted-ec-dir')}`,
    ]) {
      const s = store();
      const { code, stderr } = await pull(s, ref, '--decryption-key', `jwe:${KEYS}/ec.pem`);
      expect(code, stderr).toBe(0);
      await expectTree(s, ref);
    }
  });

  it('opens an image with two recipients with either key', async () => {
    for (const key of ['rsa.pem', 'ec.pem']) {
      const { code, stderr } = await pull(
        store(),
        `oci:${FIXTURES}/encrypted-two-recipients:latest`,
        '--decryption-key',
        `jwe:${KEYS}/${key}`,
      );
      expect(code, stderr).toBe(0);
    }
  });

  it('reports per layer when only some layers are encrypted', async () => {
    const { report } = await pull(
      store(),
      `oci:${FIXTURES}/encrypted-partial:latest`,
      '--decryption-key',
      `${KEYS}/rsa.pem`,
    );
    expect(report.layers.map((l: { format: string; reasons: string[] }) => [l.format, l.reasons])).toEqual([
      ['gzip', ['not-chunked']],
      ['encrypted', ['encrypted']],
    ]);
  });

  it('shows in inspect which layers are encrypted and for which key types', async () => {
    const result = await runCli(['inspect', '--json', `oci:${FIXTURES}/encrypted-two-recipients:latest`], {
      SKIFF_STORE: store(),
    });
    const report = JSON.parse(result.stdout);
    for (const layer of report.layers) {
      expect(layer.format).toBe('encrypted');
      expect(layer.encryption.recipients.map((r: { keyType: string }) => r.keyType).sort()).toEqual([
        'EC',
        'RSA',
      ]);
    }
  });

  it('fails under convert-only with exit 3, the store unchanged', async () => {
    await expectRefused(
      store(),
      `oci:${FIXTURES}/encrypted-rsa:latest`,
      3,
      ['encrypted'],
      '--mode',
      'convert-only',
      '--decryption-key',
      `${KEYS}/rsa.pem`,
    );
  });

  it('fails with a wrong key, or none, with exit 4 naming the layer, the store unchanged', async () => {
    await expectRefused(
      store(),
      `${registry}/issue4/encrypted:rsa`,
      4,
      ['no decryption key fits', 'sha256:'],
      '--decryption-key',
      `jwe:${KEYS}/wrong-rsa.pem`,
    );
    await expectRefused(store(), `oci:${FIXTURES}/encrypted-ec:latest`, 4, ['--decryption-key', 'sha256:']);
  });
});
