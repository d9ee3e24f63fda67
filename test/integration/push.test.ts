// Issue 12: `save` and `push` are copies from the store (store:) through the copy engine. What they
// write is read back by skiff itself and by skopeo, digests and DiffIDs checked.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { expectCleanStderr, runCli, tempDir } from '../harness/cli.js';

const execFileAsync = promisify(execFile);
const registry = inject('registry');
const GZIP = `${registry}/fixtures/gzip:latest`;
const MULTI = `${registry}/fixtures/multi:latest`;

const work = tempDir('skiff-push-');
afterAll(() => work.cleanup());
let counter = 0;
const fresh = (what: string) => path.join(work.dir, `${what}-${++counter}`);

async function skiff(args: string[], store: string) {
  return runCli(args, { SKIFF_STORE: store });
}

async function skiffJson(args: string[], store: string) {
  const result = await skiff([...args, '--json'], store);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout);
}

async function skopeo(...args: string[]) {
  return (await execFileAsync('skopeo', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
}

async function pulledStore(...refs: Array<[string, ...string[]]>): Promise<string> {
  const store = fresh('store');
  for (const [ref, ...flags] of refs) await skiffJson(['pull', ref, ...flags], store);
  return store;
}

describe('skiff push', () => {
  it('sends a stored image to a registry; skiff and skopeo read back its config and DiffIDs', async () => {
    const store = await pulledStore([GZIP]);
    const pulled = (await skiffJson(['images'], store))[0];
    const dest = `${registry}/pushed/gzip:v1`;
    const pushed = await skiffJson(['push', GZIP, `docker://${dest}`], store);
    expect(pushed).toMatchObject({
      error: null,
      upToDate: false,
      blobsCopied: 3,
      configDigest: pulled.configDigest,
    });

    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${dest}`));
    expect(inspected.Digest).toBe(pushed.manifestDigest);
    const config = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--config', `docker://${dest}`));
    expect(inspected.Layers).toEqual(config.rootfs.diff_ids);
    const raw = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${dest}`));
    expect(raw.config.digest).toBe(pulled.configDigest);

    // skopeo copies it out, verifying every blob against its digest (it compresses the layers
    // for an OCI layout, so the DiffIDs are what stays) ...
    const layout = `oci:${fresh('layout')}:x`;
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${dest}`, layout);
    expect(JSON.parse(await skopeo('inspect', '--config', layout)).rootfs.diff_ids).toEqual(
      config.rootfs.diff_ids,
    );
    // ... and skiff pulls it back into a fresh store: the same image.
    const again = await skiffJson(['pull', dest], fresh('store'));
    expect(again.configDigest).toBe(pulled.configDigest);
    expect(again.layers.map((l: { diffID: string }) => l.diffID)).toEqual(config.rootfs.diff_ids);

    // A second push finds everything there.
    const rerun = await skiffJson(['push', GZIP, `docker://${dest}`], store);
    expect(rerun).toMatchObject({ upToDate: true, blobsCopied: 0, manifestDigest: pushed.manifestDigest });
  });

  it('--all pushes every platform a name was pulled for as an index; --platform picks one', async () => {
    const store = await pulledStore(
      [MULTI, '--platform', 'linux/arm64'],
      [MULTI, '--platform', 'linux/amd64'],
    );
    const dest = `${registry}/pushed/multi:all`;
    const pushed = await skiffJson(['push', MULTI, `docker://${dest}`, '--all'], store);
    expect(pushed.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const index = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${dest}`));
    expect(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).sort(),
    ).toEqual(['amd64', 'arm64']);
    const arm = await skiffJson(
      ['push', MULTI, `docker://${registry}/pushed/multi:arm`, '--platform', 'linux/arm64'],
      store,
    );
    const armConfig = JSON.parse(
      await skopeo('inspect', '--tls-verify=false', '--config', `docker://${registry}/pushed/multi:arm`),
    );
    expect(armConfig.architecture).toBe('arm64');
    expect(arm.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('refuses a layer that no longer rebuilds to its DiffID (exit 4): nothing is tagged at the registry', async () => {
    const store = await pulledStore([GZIP]);
    // Damage every stored file content: each layer now rebuilds to other bytes.
    for (const pack of fs.readdirSync(path.join(store, 'packs')).filter((f) => !f.endsWith('.idx'))) {
      const file = path.join(store, 'packs', pack);
      const bytes = fs.readFileSync(file);
      if (bytes.length < 64) continue;
      fs.chmodSync(file, 0o644);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      fs.writeFileSync(file, bytes);
    }
    const dest = `docker://${registry}/pushed/damaged:v1`;
    const result = await skiff(['push', GZIP, dest], store);
    expect(expectCleanStderr(result)).toMatch(/^skiff: .*(DiffID|does not match|digest)/);
    expect(result.code).toBe(4);
    await expect(skopeo('inspect', '--tls-verify=false', dest)).rejects.toThrow(
      /manifest unknown|not found/i,
    );
  });

  it('refuses a local destination (that is save) and an unknown image (exit 2)', async () => {
    const store = await pulledStore([GZIP]);
    const local = await skiff(['push', GZIP, `oci:${fresh('layout')}`], store);
    expect(local.code).toBe(1);
    expect(expectCleanStderr(local)).toMatch(/push writes docker:\/\/ .* is for skiff save/);
    const missing = await skiff(['push', 'nosuch/image:v9', `docker://${registry}/pushed/x:v1`], store);
    expect(missing.code).toBe(2);
    expect(expectCleanStderr(missing)).toMatch(/nosuch\/image:v9 is not in the store/);
  });
});

describe('skiff save to every local transport', () => {
  it('writes oci:, dir: and docker-archive:, each of which skopeo reads with the config DiffIDs', async () => {
    const store = await pulledStore([GZIP]);
    const config = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--config', `docker://${GZIP}`));
    const archive = `${fresh('archive')}.tar`;
    for (const dest of [`oci:${fresh('oci')}:v1`, `dir:${fresh('dir')}`, `docker-archive:${archive}`]) {
      const saved = await skiffJson(['save', GZIP, dest], store);
      expect(saved).toMatchObject({ layersWritten: 2, layersPresent: 0 });
      expect(JSON.parse(await skopeo('inspect', dest)).Layers).toEqual(config.rootfs.diff_ids);
    }
    // The archive is named after the stored image's tag, as docker save names it.
    const { stdout } = await execFileAsync('tar', ['-xOf', archive, 'manifest.json']);
    expect(JSON.parse(stdout)[0].RepoTags).toEqual([GZIP]);
    const oci = `oci:${fresh('oci')}`;
    await skiffJson(['save', GZIP, oci], store);
    // Without a tag, the layout is tagged as the stored name is (here `latest`).
    expect(JSON.parse(await skopeo('inspect', `${oci}:latest`)).Layers).toEqual(config.rootfs.diff_ids);
    expect(await skiffJson(['save', GZIP, oci], store)).toMatchObject({
      upToDate: true,
      layersWritten: 0,
      layersPresent: 2,
      bytesWritten: 0,
    });
  });

  it('refuses a registry destination: that is push', async () => {
    const store = await pulledStore([GZIP]);
    const result = await skiff(['save', GZIP, `docker://${registry}/pushed/x:v1`], store);
    expect(result.code).toBe(1);
    expect(expectCleanStderr(result)).toMatch(/is for skiff push/);
  });
});
