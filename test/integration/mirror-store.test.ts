// Issue 12: the store as a copy's destination. `skiff mirror SRC store:NAME` is a pull through the
// one engine (reuse by DiffID, then an up-to-date re-run), reported as a mirror result; from a
// registry, an OCI layout, a docker archive, and another store. fsck proves what was committed.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { expectCleanStderr, runCli, tempDir } from '../harness/cli.js';
import { fixtureRef } from '../harness/registry.js';

const execFileAsync = promisify(execFile);
const registry = inject('registry');
const work = tempDir('skiff-mirror-store-');
afterAll(() => work.cleanup());

let stores = 0;
const freshStore = () => path.join(work.dir, `store${++stores}`);

async function mirrorJson(args: string[]) {
  const result = await runCli(['mirror', ...args, '--json']);
  const lines = result.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  return {
    result,
    image: lines.find((l) => l.type === 'image'),
    summary: lines.find((l) => l.type === 'summary'),
  };
}

async function namesIn(store: string): Promise<string[]> {
  const listed = await runCli(['images', '--store', store, '--json']);
  expect(listed.code, listed.stderr).toBe(0);
  return (JSON.parse(listed.stdout) as Array<{ names: string[] }>).flatMap((i) => i.names);
}

async function fsckClean(store: string): Promise<void> {
  const checked = await runCli(['fsck', '--store', store]);
  expect(checked.code, checked.stderr + checked.stdout).toBe(0);
}

describe('mirror into the store (store: as a destination)', () => {
  it('copies a registry image into the store under the name given, and a re-run is up to date', async () => {
    const store = freshStore();
    const args = [`docker://${registry}/fixtures/gzip:latest`, `store:[${store}]app:1`];
    const first = await mirrorJson(args);
    expect(first.result.code, first.result.stderr).toBe(0);
    expect(first.image).toMatchObject({
      source: args[0],
      destination: args[1],
      upToDate: false,
      manifestsWritten: 1,
      blobsSkipped: 0,
      error: null,
    });
    expect(first.image.blobsCopied).toBeGreaterThan(0);
    expect(first.image.manifestDigest).toMatch(/^sha256:/);
    expect(first.image.mediaType).toMatch(/manifest/);
    expect(await namesIn(store)).toContain('docker.io/library/app:1');
    await fsckClean(store);

    const again = await mirrorJson(args);
    expect(again.result.code, again.result.stderr).toBe(0);
    expect(again.image).toMatchObject({
      upToDate: true,
      blobsCopied: 0,
      bytes: 0,
      manifestsWritten: 0,
      manifestDigest: first.image.manifestDigest,
    });
    expect(again.summary).toMatchObject({ upToDate: 1, failed: 0 });
    // Proven by the source's HEAD against the name's record: not one counted manifest GET.
    expect(again.summary.manifestGets).toEqual({});
  });

  it('copies from an OCI layout and a docker archive, then from one store into another', async () => {
    const store = freshStore();
    const archive = path.join(work.dir, 'plain.tar');
    await execFileAsync('skopeo', ['copy', '-q', fixtureRef('plain'), `docker-archive:${archive}:plain:1`]);
    for (const [source, name] of [
      [fixtureRef('gzip'), 'from-oci:stable'],
      [`docker-archive:${archive}`, 'from-archive:1'],
    ] as const) {
      const copied = await mirrorJson([source, `store:[${store}]${name}`]);
      expect(copied.result.code, copied.result.stderr).toBe(0);
      expect(copied.image.error).toBeNull();
    }
    expect(await namesIn(store)).toEqual(
      expect.arrayContaining(['docker.io/library/from-oci:stable', 'docker.io/library/from-archive:1']),
    );

    const other = freshStore();
    const copied = await mirrorJson([`store:[${store}]from-oci:stable`, `store:[${other}]copied:2`]);
    expect(copied.result.code, copied.result.stderr).toBe(0);
    expect(copied.image).toMatchObject({ upToDate: false, manifestsWritten: 1, error: null });
    expect(await namesIn(other)).toEqual(['docker.io/library/copied:2']);
    await fsckClean(other);
  });

  it('refuses a digest as the name to write, and --all, before anything is written', async () => {
    const store = freshStore();
    for (const args of [
      [fixtureRef('gzip'), `store:[${store}]sha256:${'a'.repeat(64)}`],
      ['--all', `docker://${registry}/fixtures/multi:latest`, `store:[${store}]multi:1`],
    ]) {
      const refused = await runCli(['mirror', ...args]);
      expect(refused.code).toBe(1);
      expect(expectCleanStderr(refused)).toMatch(/^skiff: .*(digest|--all)/);
    }
    expect(await runCli(['images', '--store', store])).toMatchObject({ code: 1 });
  });
});
