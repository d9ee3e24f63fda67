// `skiff mirror` against two real registries (Debian's docker-registry) behind counting proxies,
// and the local transports. Transfers are asserted from what the proxies saw, not from skiff's
// own report; digests from skopeo, the reference implementation.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompress as zstdDecompress } from 'zstd-napi';
import { copyImage } from '../../src/mirror/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import {
  FIXTURES,
  pushFixture,
  type RunningRegistry,
  skopeoCopy,
  startRegistry,
} from '../harness/registry.js';

const execFileAsync = promisify(execFile);

let regA: RunningRegistry;
let regB: RunningRegistry;
/** Source registry, through its proxy. */
let A: CountingProxy;
/** Destination registry, through its proxy. */
let B: CountingProxy;
let work: string;
const cleanups: Array<() => unknown> = [];

const PUSHED = ['gzip', 'zstd', 'plain', 'v2s2', 'multi', 'encrypted-rsa'];
const TAGS = ['1.0', '1.1', '2.0', 'latest', 'edge'];

beforeAll(async () => {
  [regA, regB] = await Promise.all([startRegistry({ schema1: true }), startRegistry({ schema1: true })]);
  cleanups.push(
    () => regA.stop(),
    () => regB.stop(),
  );
  [A, B] = await Promise.all([startCountingProxy(regA.host), startCountingProxy(regB.host)]);
  cleanups.push(
    () => A.stop(),
    () => B.stop(),
  );
  const temp = tempDir('skiff-mirror-');
  work = temp.dir;
  cleanups.push(temp.cleanup);
  await Promise.all(PUSHED.map((f) => pushFixture(regA.host, f, `fixtures/${f}:latest`)));
  // skopeo signs the schema1 manifest anew for the repository it is pushed to (the name is in it).
  await skopeoCopy(`dir:${path.join(FIXTURES, 'schema1')}`, `docker://${regA.host}/s1/img:latest`);
  await pushFixture(regA.host, 'gzip', `tags/app:${TAGS[0]}`);
  const manifest = await getManifest(regA.host, 'tags/app', TAGS[0]!);
  for (const tag of TAGS.slice(1)) await putManifest(regA.host, 'tags/app', tag, manifest);
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

// ---- helpers -------------------------------------------------------------------------------

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
].join(', ');

async function getManifest(host: string, repo: string, ref: string) {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  if (res.status !== 200) throw new Error(`GET ${repo}:${ref}: ${res.status}`);
  return {
    bytes: Buffer.from(await res.arrayBuffer()),
    type: res.headers.get('content-type')!,
    digest: res.headers.get('docker-content-digest')!,
  };
}

async function putManifest(host: string, repo: string, ref: string, m: { bytes: Buffer; type: string }) {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'content-type': m.type },
    body: m.bytes,
  });
  if (res.status !== 201) throw new Error(`PUT ${repo}:${ref}: ${res.status} ${await res.text()}`);
}

/** The manifest digest skopeo sees for a reference (the sha256 of `skopeo inspect --raw`). */
async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await execFileAsync('skopeo', ['inspect', '--raw', '--tls-verify=false', ref], {
    encoding: 'buffer',
    maxBuffer: 8 << 20,
  });
  return sha256(stdout);
}

async function skopeoJson(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync('skopeo', ['inspect', '--tls-verify=false', ...args], {
    maxBuffer: 8 << 20,
  });
  return JSON.parse(stdout);
}

/** Decompresses every layer of a manifest from the registry and hashes the tars. */
async function layerDiffIDs(
  host: string,
  repo: string,
  manifest: { layers: Array<{ digest: string; mediaType: string }> },
) {
  const diffIDs: string[] = [];
  for (const layer of manifest.layers) {
    const blob = Buffer.from(
      await (await fetch(`http://${host}/v2/${repo}/blobs/${layer.digest}`)).arrayBuffer(),
    );
    expect(sha256(blob)).toBe(layer.digest);
    diffIDs.push(sha256(layer.mediaType.endsWith('gzip') ? zlib.gunzipSync(blob) : zstdDecompress(blob)));
  }
  return diffIDs;
}

function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function fixtureDigest(name: string): Promise<string> {
  return skopeoDigest(`oci:${path.join(FIXTURES, name)}:latest`);
}

async function fixtureConfig(name: string): Promise<{ digest: string; diffIDs: string[] }> {
  const manifest = JSON.parse(
    (await execFileAsync('skopeo', ['inspect', '--raw', `oci:${path.join(FIXTURES, name)}:latest`])).stdout,
  );
  const config = JSON.parse(
    (
      await execFileAsync('skopeo', [
        'inspect',
        '--config',
        '--raw',
        `oci:${path.join(FIXTURES, name)}:latest`,
      ])
    ).stdout,
  );
  return { digest: manifest.config.digest, diffIDs: config.rootfs.diff_ids };
}

interface ImageLine {
  type: 'image';
  source: string;
  destination: string;
  manifestDigest: string | null;
  mediaType: string | null;
  upToDate: boolean;
  blobsCopied: number;
  blobsSkipped: number;
  blobsMounted: number;
  manifestsWritten: number;
  bytes: number;
  durationMs: number;
  notes: string[];
  error: null | { kind: string; exitCode: number; message: string };
}

async function mirror(...args: string[]) {
  const result = await runCli(['mirror', '--json', ...args]);
  const lines = result.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const images = lines.filter((l) => l.type === 'image') as ImageLine[];
  const summary = lines.find((l) => l.type === 'summary');
  return { ...result, images, summary, image: images[0]! };
}

async function mirrorOk(...args: string[]): Promise<ImageLine> {
  const result = await mirror(...args);
  expect(result.image?.error, result.stderr).toBeNull();
  expect(result.code, result.stderr).toBe(0);
  return result.image;
}

function resetCounts(): void {
  A.reset();
  B.reset();
}

const dir = (name: string) => path.join(work, name);

// ---- registry to registry ---------------------------------------------------------------------

describe('mirror between registries', () => {
  it('preserves the manifest digest, and a re-run transfers no blob and says so', async () => {
    const src = `docker://${A.host}/fixtures/gzip:latest`;
    const dst = `docker://${B.host}/mirror/gzip:latest`;
    resetCounts();
    const first = await mirrorOk(src, dst);
    expect(first).toMatchObject({ upToDate: false, blobsCopied: 3, blobsSkipped: 0, blobsMounted: 0 });
    expect(first.manifestDigest).toBe(await fixtureDigest('gzip'));
    expect(await skopeoDigest(`docker://${regB.host}/mirror/gzip:latest`)).toBe(await fixtureDigest('gzip'));
    expect(A.blobGets()).toHaveLength(3);
    expect(first.bytes).toBeGreaterThan(270_000);

    resetCounts();
    const again = await mirrorOk(src, dst);
    expect(again).toMatchObject({ upToDate: true, blobsCopied: 0, manifestsWritten: 0, bytes: 0 });
    expect(again.manifestDigest).toBe(first.manifestDigest);
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
    expect(B.manifestPuts()).toEqual([]);

    const human = await runCli(['mirror', src, dst]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^up to date .*no blob transferred/m);
  });

  it('writes only the manifest for a new tag of an image the destination already has', async () => {
    await mirrorOk(`docker://${A.host}/fixtures/gzip:latest`, `docker://${B.host}/mirror/gzip:latest`);
    resetCounts();
    const line = await mirrorOk(
      `docker://${A.host}/fixtures/gzip:latest`,
      `docker://${B.host}/mirror/gzip:v2`,
    );
    expect(line).toMatchObject({ blobsCopied: 0, blobsSkipped: 3, manifestsWritten: 1 });
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
    expect(B.manifestPuts().map((r) => r.path)).toEqual(['/v2/mirror/gzip/manifests/v2']);
  });

  it('mounts blobs across repositories of one registry instead of copying them', async () => {
    await mirrorOk(`docker://${A.host}/fixtures/zstd:latest`, `docker://${B.host}/mirror/zstd:latest`);
    resetCounts();
    const line = await mirrorOk(
      `docker://${B.host}/mirror/zstd:latest`,
      `docker://${B.host}/other/zstd:latest`,
    );
    expect(line).toMatchObject({ blobsCopied: 0, blobsMounted: 3, bytes: 0 });
    const mounts = B.uploads().filter((r) => r.method === 'POST' && r.path.includes('mount='));
    expect(mounts.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(B.uploads().filter((r) => r.method !== 'POST')).toEqual([]);
    expect(B.blobGets()).toEqual([]);
    expect(await skopeoDigest(`docker://${regB.host}/other/zstd:latest`)).toBe(await fixtureDigest('zstd'));
  });

  it('--all copies a multi-platform index with every platform, digests intact', async () => {
    const line = await mirrorOk(
      '--all',
      `docker://${A.host}/fixtures/multi:latest`,
      `docker://${B.host}/mirror/multi:latest`,
    );
    const indexDigest = await fixtureDigest('multi');
    expect(line.manifestDigest).toBe(indexDigest);
    expect(line.manifestsWritten).toBe(6);
    const index = JSON.parse((await getManifest(regB.host, 'mirror/multi', 'latest')).bytes.toString());
    expect(index.manifests).toHaveLength(5);
    for (const child of index.manifests) {
      const copied = await getManifest(regB.host, 'mirror/multi', child.digest);
      expect(sha256(copied.bytes)).toBe(child.digest);
      const manifest = JSON.parse(copied.bytes.toString());
      for (const blob of [manifest.config, ...manifest.layers]) {
        const head = await fetch(`http://${regB.host}/v2/mirror/multi/blobs/${blob.digest}`, {
          method: 'HEAD',
        });
        expect(head.status).toBe(200);
      }
    }
    resetCounts();
    const again = await mirrorOk(
      '--all',
      `docker://${A.host}/fixtures/multi:latest`,
      `docker://${B.host}/mirror/multi:latest`,
    );
    expect(again.upToDate).toBe(true);
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
  });

  it('--platform copies one image of an index, tagged at the destination', async () => {
    const line = await mirrorOk(
      '--platform',
      'linux/arm64',
      `docker://${A.host}/fixtures/multi:latest`,
      `docker://${B.host}/mirror/multi-arm64:latest`,
    );
    const index = JSON.parse((await getManifest(regA.host, 'fixtures/multi', 'latest')).bytes.toString());
    const arm64 = index.manifests.find(
      (m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64',
    );
    expect(line.manifestDigest).toBe(arm64.digest);
    expect(await skopeoDigest(`docker://${regB.host}/mirror/multi-arm64:latest`)).toBe(arm64.digest);
  });

  it('copies encrypted layers as they are, without a key', async () => {
    const line = await mirrorOk(
      `docker://${A.host}/fixtures/encrypted-rsa:latest`,
      `docker://${B.host}/mirror/enc:latest`,
    );
    expect(line.manifestDigest).toBe(await fixtureDigest('encrypted-rsa'));
    expect(await skopeoDigest(`docker://${regB.host}/mirror/enc:latest`)).toBe(
      await fixtureDigest('encrypted-rsa'),
    );
  });

  it('uploads in PATCH chunks when asked, memory bounded by one chunk, digests intact', async () => {
    const client = new RegistryClient({ retry: { retries: 1, minDelayMs: 10 } });
    try {
      resetCounts();
      const result = await copyImage(
        `docker://${A.host}/fixtures/gzip:latest`,
        `docker://${B.host}/chunked/gzip:latest`,
        {
          client,
          chunkSize: 64 * 1024,
        },
      );
      expect(result.error).toBeUndefined();
      expect(result.blobsCopied).toBe(3);
      // layers of 142731 and 130799 bytes in 64 KiB chunks (3 + 2), and the config in one
      expect(B.uploads().filter((r) => r.method === 'PATCH' && r.status === 202)).toHaveLength(6);
      expect(await skopeoDigest(`docker://${regB.host}/chunked/gzip:latest`)).toBe(
        await fixtureDigest('gzip'),
      );
    } finally {
      await client.close();
    }
  });

  it('retries a blob whose upload connection drops, by reopening the source', async () => {
    B.dropNext((method, p) => method === 'PUT' && p.includes('/blobs/uploads/'));
    resetCounts();
    const line = await mirrorOk(
      `docker://${A.host}/fixtures/plain:latest`,
      `docker://${B.host}/mirror/retry:latest`,
    );
    expect(B.requests.some((r) => r.status === 0)).toBe(true);
    expect(line.blobsCopied).toBe(3);
    expect(await skopeoDigest(`docker://${regB.host}/mirror/retry:latest`)).toBe(
      await fixtureDigest('plain'),
    );
  });
});

// ---- transports --------------------------------------------------------------------------------

describe('digests across transports', () => {
  const kinds = ['docker', 'oci', 'dir'] as const;
  type Kind = (typeof kinds)[number];
  const refFor = (kind: Kind, name: string, host: string) =>
    kind === 'docker'
      ? `docker://${host}/pairs/${name}:latest`
      : kind === 'oci'
        ? `oci:${dir(`oci-${name}`)}:latest`
        : `dir:${dir(`dir-${name}`)}`;
  const skopeoRef = (ref: string) => ref.replace(B.host, regB.host).replace(A.host, regA.host);

  it('every pair of registry, oci: and dir: preserves the manifest digest', async () => {
    const expected = await fixtureDigest('gzip');
    const sources: Record<Kind, string> = {
      docker: `docker://${A.host}/fixtures/gzip:latest`,
      oci: `oci:${path.join(FIXTURES, 'gzip')}:latest`,
      dir: `dir:${dir('src-dir-gzip')}`,
    };
    await skopeoCopy(sources.oci, sources.dir, ['--preserve-digests']);
    for (const from of kinds) {
      for (const to of kinds) {
        const destination = refFor(to, `${from}-to-${to}`, B.host);
        const line = await mirrorOk(sources[from], destination);
        expect(line.manifestDigest, `${from} -> ${to}`).toBe(expected);
        expect(await skopeoDigest(skopeoRef(destination)), `${from} -> ${to}`).toBe(expected);
      }
    }
  });

  it('an index survives registry -> oci: -> dir: -> registry with every digest', async () => {
    const expected = await fixtureDigest('multi');
    const chain = [
      `docker://${A.host}/fixtures/multi:latest`,
      `oci:${dir('chain-oci')}:v1`,
      `dir:${dir('chain-dir')}`,
      `docker://${B.host}/chain/multi:v1`,
    ];
    for (let i = 1; i < chain.length; i++) {
      const line = await mirrorOk('--all', chain[i - 1]!, chain[i]!);
      expect(line.manifestDigest, chain[i]).toBe(expected);
      expect(await skopeoDigest(skopeoRef(chain[i]!)), chain[i]).toBe(expected);
    }
    // a re-run into the dir: finds everything in place
    const again = await mirrorOk('--all', chain[1]!, chain[2]!);
    expect(again.upToDate).toBe(true);
  });

  it('keeps a Docker schema2 manifest byte for byte in an OCI layout', async () => {
    const source = `dir:${path.join(FIXTURES, 'v2s2')}`;
    const expected = sha256(fs.readFileSync(path.join(FIXTURES, 'v2s2', 'manifest.json')));
    const line = await mirrorOk(source, `oci:${dir('v2s2-oci')}:latest`);
    expect(line.manifestDigest).toBe(expected);
    const index = JSON.parse(fs.readFileSync(path.join(dir('v2s2-oci'), 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(expected);
    const back = await mirrorOk(`oci:${dir('v2s2-oci')}:latest`, `docker://${B.host}/v2s2/back:latest`);
    expect(back.manifestDigest).toBe(expected);
    expect(await skopeoDigest(`docker://${regB.host}/v2s2/back:latest`)).toBe(expected);
  });
});

describe('docker-archive', () => {
  it('writes an archive that loads back as the same image', async () => {
    const archive = dir('gzip.tar');
    const { digest: configDigest, diffIDs } = await fixtureConfig('gzip');
    const line = await mirrorOk(
      `docker://${A.host}/fixtures/gzip:latest`,
      `docker-archive:${archive}:example.com/app:v1`,
    );
    expect(line.blobsCopied).toBe(3);

    const listing = (await execFileAsync('tar', ['tf', archive])).stdout.trim().split('\n').sort();
    const hex = (d: string) => d.slice('sha256:'.length);
    expect(listing).toEqual(
      ['manifest.json', `${hex(configDigest)}.json`, ...diffIDs.map((d) => `${hex(d)}.tar`)].sort(),
    );
    const inside = JSON.parse((await execFileAsync('tar', ['xOf', archive, 'manifest.json'])).stdout);
    expect(inside).toEqual([
      {
        Config: `${hex(configDigest)}.json`,
        RepoTags: ['example.com/app:v1'],
        Layers: diffIDs.map((d) => `${hex(d)}.tar`),
      },
    ]);

    // skopeo reads it as the same image: same config, layers named by the same DiffIDs
    const inspected = await skopeoJson([`docker-archive:${archive}`]);
    expect(inspected.Layers).toEqual(diffIDs);
    await skopeoCopy(`docker-archive:${archive}`, `oci:${dir('from-archive-skopeo')}:x`);
    const viaSkopeo = JSON.parse(
      (await execFileAsync('skopeo', ['inspect', '--raw', `oci:${dir('from-archive-skopeo')}:x`])).stdout,
    );
    expect(viaSkopeo.config.digest).toBe(configDigest);

    // skiff pulls it (verifying every DiffID) into the same image
    const store = dir('archive-store');
    const pulled = await runCli(['pull', `docker-archive:${archive}`, '--json'], { SKIFF_STORE: store });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(JSON.parse(pulled.stdout).configDigest).toBe(configDigest);

    // and mirrors it on, to a registry
    const pushed = await mirrorOk(`docker-archive:${archive}`, `docker://${B.host}/from-archive/app:v1`);
    const manifest = JSON.parse((await getManifest(regB.host, 'from-archive/app', 'v1')).bytes.toString());
    expect(pushed.manifestDigest).toBe(sha256(JSON.stringify(manifest)));
    expect(manifest.config.digest).toBe(configDigest);
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(diffIDs);

    // a re-run finds the archive up to date and leaves it alone
    const before = fs.statSync(archive).mtimeMs;
    const again = await mirrorOk(
      `docker://${A.host}/fixtures/gzip:latest`,
      `docker-archive:${archive}:example.com/app:v1`,
    );
    expect(again.upToDate).toBe(true);
    expect(fs.statSync(archive).mtimeMs).toBe(before);
  });

  it('reads archives written by skopeo (symlinked legacy layout)', async () => {
    const archive = dir('skopeo.tar');
    const { digest: configDigest, diffIDs } = await fixtureConfig('gzip');
    await skopeoCopy(`oci:${path.join(FIXTURES, 'gzip')}:latest`, `docker-archive:${archive}:skopeo/gzip:1`);
    const line = await mirrorOk(`docker-archive:${archive}`, `dir:${dir('skopeo-archive-dir')}`);
    const bytes = fs.readFileSync(path.join(dir('skopeo-archive-dir'), 'manifest.json'));
    expect(line.manifestDigest).toBe(sha256(bytes));
    const manifest = JSON.parse(bytes.toString());
    expect(manifest.config.digest).toBe(configDigest);
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(diffIDs);
    expect(manifest.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(
      diffIDs.map(() => 'application/vnd.docker.image.rootfs.diff.tar'),
    );
  });

  it('refuses --all: an archive holds single images', async () => {
    const result = await mirror(
      '--all',
      `docker://${A.host}/fixtures/multi:latest`,
      `docker-archive:${dir('multi.tar')}`,
    );
    expect(result.code).toBe(1);
    expect(result.image.error).toMatchObject({ kind: 'usage' });
    expect(fs.existsSync(dir('multi.tar'))).toBe(false);
  });
});

// ---- schema1 and conversion ------------------------------------------------------------------

describe('schema1 sources', () => {
  it('are converted to OCI with computed DiffIDs, the reason reported, and re-runs are no-ops', async () => {
    const src = `docker://${A.host}/s1/img:latest`;
    const dst = `docker://${B.host}/s1conv/img:latest`;
    const line = await mirrorOk(src, dst);
    expect(line.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(line.notes.join(' ')).toMatch(/schema1 manifest converted to OCI/);
    const config = await skopeoJson(['--config', `docker://${regB.host}/s1conv/img:latest`]);
    // the schema1 fixture carries the plain fixture's content, gzipped
    expect((config.rootfs as { diff_ids: string[] }).diff_ids).toEqual(
      (await fixtureConfig('plain')).diffIDs,
    );
    resetCounts();
    const again = await mirrorOk(src, dst);
    expect(again.upToDate).toBe(true);
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
  });

  it('are copied byte for byte with --preserve-schema1', async () => {
    const line = await mirrorOk(
      '--preserve-schema1',
      `docker://${A.host}/s1/img:latest`,
      `docker://${B.host}/s1/img:latest`,
    );
    const source = await getManifest(regA.host, 's1/img', 'latest');
    const copied = await getManifest(regB.host, 's1/img', 'latest');
    // The registry signs schema1 anew on every GET: the payload digest is what identifies it.
    expect(copied.digest).toBe(source.digest);
    expect(line.manifestDigest).toBe(source.digest);
    expect(copied.type).toBe('application/vnd.docker.distribution.manifest.v1+prettyjws');
    const again = await mirrorOk(
      '--preserve-schema1',
      `docker://${A.host}/s1/img:latest`,
      `docker://${B.host}/s1/img:latest`,
    );
    expect(again.upToDate).toBe(true);
  });

  it('--preserve-schema1 into a repository the manifest does not name fails before uploading', async () => {
    resetCounts();
    const result = await mirror(
      '--preserve-schema1',
      `docker://${A.host}/s1/img:latest`,
      `docker://${B.host}/elsewhere/img:latest`,
    );
    expect(result.code).toBe(1);
    expect(result.image.error?.message).toMatch(/names repository "s1\/img"/);
    expect(B.uploads()).toEqual([]);
  });
});

describe('--convert', () => {
  for (const target of ['gzip', 'zstd:chunked'] as const) {
    it(`${target}: new layers that decompress to the same DiffIDs, same config; re-run is a no-op`, async () => {
      const repo = `conv/${target.replace(':', '-')}`;
      const { digest: configDigest } = await fixtureConfig('zstd');
      const line = await mirrorOk(
        '--convert',
        target,
        `docker://${A.host}/fixtures/zstd:latest`,
        `docker://${B.host}/${repo}:latest`,
      );
      const manifest = JSON.parse((await getManifest(regB.host, repo, 'latest')).bytes.toString());
      expect(line.manifestDigest).toBe(sha256(JSON.stringify(manifest)));
      expect(manifest.config.digest).toBe(configDigest);
      const want =
        target === 'gzip'
          ? 'application/vnd.oci.image.layer.v1.tar+gzip'
          : 'application/vnd.oci.image.layer.v1.tar+zstd';
      expect(manifest.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([want, want]);
      if (target === 'zstd:chunked') {
        for (const l of manifest.layers)
          expect(Object.keys(l.annotations)).toContain('io.github.containers.zstd-chunked.manifest-checksum');
      }
      expect(await layerDiffIDs(regB.host, repo, manifest)).toEqual((await fixtureConfig('zstd')).diffIDs);

      resetCounts();
      const again = await mirrorOk(
        '--convert',
        target,
        `docker://${A.host}/fixtures/zstd:latest`,
        `docker://${B.host}/${repo}:latest`,
      );
      expect(again.upToDate).toBe(true);
      expect(A.blobGets()).toEqual([]);
      expect(B.uploads()).toEqual([]);
    });
  }
});

// ---- lists, sharding, failures ------------------------------------------------------------------

describe('mirror --file', () => {
  it('one broken reference fails alone: the others succeed, exit code non-zero, a JSON line with the error', async () => {
    const list = dir('broken.yaml');
    fs.writeFileSync(
      list,
      [
        'images:',
        `  - source: docker://${A.host}/fixtures/gzip:latest`,
        `    destination: docker://${B.host}/list/gzip`,
        `  - source: docker://${A.host}/fixtures/does-not-exist:latest`,
        `    destination: docker://${B.host}/list/missing`,
        `  - source: docker://${A.host}/fixtures/zstd`,
        `    destination: oci:${dir('list-oci')}`,
      ].join('\n'),
    );
    const result = await mirror('--file', list, '--jobs', '2');
    expect(result.code).toBe(2);
    expect(result.images).toHaveLength(3);
    const bySource = Object.fromEntries(result.images.map((i) => [i.source, i]));
    const broken = bySource[`docker://${A.host}/fixtures/does-not-exist:latest`]!;
    expect(broken.error).toMatchObject({ kind: 'not-found', exitCode: 2 });
    expect(broken.destination).toBe(`docker://${B.host}/list/missing:latest`);
    expect(bySource[`docker://${A.host}/fixtures/gzip:latest`]).toMatchObject({
      error: null,
      destination: `docker://${B.host}/list/gzip:latest`,
      manifestDigest: await fixtureDigest('gzip'),
    });
    expect(bySource[`docker://${A.host}/fixtures/zstd:latest`]).toMatchObject({
      error: null,
      destination: `oci:${dir('list-oci')}:latest`,
      manifestDigest: await fixtureDigest('zstd'),
    });
    expect(result.summary).toMatchObject({
      type: 'summary',
      images: 3,
      succeeded: 2,
      failed: 1,
      exitCode: 2,
    });
    expect(await skopeoDigest(`docker://${regB.host}/list/gzip:latest`)).toBe(await fixtureDigest('gzip'));
  });

  it('--shard I/N: every expanded item is mirrored by exactly one shard', async () => {
    const list = dir('shards.yaml');
    fs.writeFileSync(
      list,
      [
        'images:',
        `  - source: docker://${A.host}/tags/app`,
        '    all-tags: true',
        `    destination: docker://${B.host}/sharded/`,
        `  - source: docker://${A.host}/fixtures/gzip`,
        '    tags: ["latest"]',
        `    destination: docker://${B.host}/sharded/gzip`,
        `  - source: docker://${A.host}/fixtures/multi:latest`,
        '    all: true',
        `    destination: oci:${dir('shard-multi')}`,
      ].join('\n'),
    );
    const expected = [
      ...TAGS.map((t) => `docker://${A.host}/tags/app:${t}`),
      `docker://${A.host}/fixtures/gzip:latest`,
      `docker://${A.host}/fixtures/multi:latest`,
    ].sort();
    const seen: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const result = await mirror('--file', list, '--shard', `${i}/3`);
      expect(result.code, result.stderr).toBe(0);
      expect(result.summary).toMatchObject({ shard: `${i}/3`, failed: 0 });
      seen.push(...result.images.map((image) => image.source));
      for (const image of result.images.filter((x) => x.source.includes('tags/app')))
        expect(image.destination).toBe(
          image.source.replace(`${A.host}/tags/app`, `${B.host}/sharded/tags/app`),
        );
    }
    expect(seen.sort()).toEqual(expected);
    const tags = (await (await fetch(`http://${regB.host}/v2/sharded/tags/app/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags.sort()).toEqual([...TAGS].sort());
  });

  // Issue 12: items of one run that share blobs upload each blob once, then skip or mount it. Four
  // items of one image (two tags into one repository, two more repositories of the registry), run
  // at once: before, each asked the registry before any had uploaded, and all four uploaded.
  it('a blob shared by several items crosses the wire once; the others skip or mount it', async () => {
    const list = dir('shared.yaml');
    fs.writeFileSync(
      list,
      [
        'images:',
        `  - source: docker://${A.host}/tags/app`,
        `    tags: ["${TAGS[0]}", "${TAGS[1]}"]`,
        `    destination: docker://${B.host}/shared/app`,
        `  - source: docker://${A.host}/fixtures/gzip:latest`,
        `    destination: docker://${B.host}/shared/gzip`,
        `  - source: docker://${A.host}/tags/app:${TAGS[2]}`,
        `    destination: docker://${B.host}/shared/again`,
      ].join('\n'),
    );
    resetCounts();
    const result = await mirror('--file', list, '--jobs', '4');
    expect(result.code, result.stderr).toBe(0);
    expect(result.images).toHaveLength(4);
    // One image of three blobs (config and two layers), four times over.
    expect(result.summary).toMatchObject({ images: 4, failed: 0, blobsCopied: 3 });
    expect(result.summary.blobsSkipped + result.summary.blobsMounted).toBe(9);
    const blobUploads = B.uploads().filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    expect(blobUploads).toHaveLength(3);
    expect(A.blobGets()).toHaveLength(3);
    for (const image of result.images) expect(image.manifestDigest).toBe(await fixtureDigest('gzip'));
    for (const ref of [`shared/app:${TAGS[1]}`, 'shared/gzip:latest', `shared/again:${TAGS[2]}`])
      expect(await skopeoDigest(`docker://${regB.host}/${ref}`)).toBe(await fixtureDigest('gzip'));
  });

  it('rejects a list naming an unknown field, naming the field', async () => {
    const list = dir('bad.yaml');
    fs.writeFileSync(list, 'images:\n  - source: docker://x/y\n    destinaton: docker://z/y\n');
    const result = await runCli(['mirror', '--file', list]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/images\[0\]/);
  });
});
