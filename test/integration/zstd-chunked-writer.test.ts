// Layers converted by skiff's zstd:chunked writer, pulled for real: skopeo 1.18 pulls them
// partially into containers-storage (overlay driver, partial images enabled, a private storage
// root), and skiff pulls them with its own pull library. A counting proxy in front of the registry
// shows what each partial pull of v2 (a few files and one chunk changed) costs; both tools must
// unpack the same tree as the one the tar was made from, and containers-storage must export a layer
// whose digest is the DiffID (its tar-split, CRCs included, reassembles the tar).
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecompressStream } from 'zstd-napi';
// @ts-expect-error: plain JS fixture library without type declarations
import { parsePlatform, writeImage, writeLayout as writeSourceLayout } from '../../fixtures/lib/mkimage.mjs';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom } from '../../fixtures/lib/trees.mjs';
import type { Digest } from '../../src/digest/index.js';
import { detectLayerFormat, type ZstdChunkedInfo } from '../../src/formats/detect.js';
import { decompressBounded } from '../../src/formats/zstd-chunked.js';
import { type ConvertedLayer, writeZstdChunked } from '../../src/formats/zstd-chunked-writer.js';
import { pull } from '../../src/pull/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Store } from '../../src/store/index.js';
import { unpack } from '../../src/unpack/index.js';
import { type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';

const execFileAsync = promisify(execFile);
const SKOPEO = '/opt/skopeo-modern/skopeo';
const hasSkopeo = fs.existsSync(SKOPEO);
if (!hasSkopeo) {
  console.log(`skipping the skopeo partial-pull tests: ${SKOPEO} is absent (bash scripts/modern-skopeo.sh)`);
}
const MTIME = 1_700_000_000;
const random = (seed: string, size: number) => pseudoRandom(seed, size) as Buffer;

// ---- source trees: v2 changes two small files, patches 100 bytes inside a 3 MiB file, adds one ----

function buildTree(dir: string, version: 1 | 2): void {
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'etc'));
  for (let i = 0; i < 30; i++) {
    const seed = version === 2 && (i === 4 || i === 25) ? `f${i}-v2` : `f${i}`;
    fs.writeFileSync(path.join(dir, 'data', `f${String(i).padStart(2, '0')}.bin`), random(seed, 24 * 1024));
  }
  const big = random('big', 3 * 1024 * 1024);
  if (version === 2) random('patch', 100).copy(big, 1_500_000);
  fs.writeFileSync(path.join(dir, 'data', 'big.bin'), big);
  fs.writeFileSync(
    path.join(dir, 'data', 'holes.bin'),
    Buffer.concat([random('h1', 5000), Buffer.alloc(20_000), random('h2', 5000)]),
  );
  fs.writeFileSync(path.join(dir, 'etc', 'empty'), '');
  fs.writeFileSync(path.join(dir, 'etc', 'hostname'), `skiff v${version}\n`);
  fs.chmodSync(path.join(dir, 'etc', 'hostname'), 0o4755);
  fs.linkSync(path.join(dir, 'etc', 'hostname'), path.join(dir, 'etc', 'hostname.hard'));
  fs.symlinkSync('etc/hostname', path.join(dir, 'link'));
  if (version === 2) fs.writeFileSync(path.join(dir, 'new.txt'), 'added in v2\n');
  for (const p of walk(dir)) fs.lutimesSync(path.join(dir, p), MTIME, MTIME);
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    out.push(p);
    if (fs.lstatSync(path.join(dir, p)).isDirectory()) out.push(...walk(dir, p));
  }
  return out;
}

/** Every path with its type, mode, owner, size, content hash or link, and (files) mtime. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of walk(dir)) {
    const full = path.join(dir, p);
    const st = fs.lstatSync(full);
    const common = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[p] = `symlink ${fs.readlinkSync(full)}`;
    else if (st.isDirectory()) out[p] = `dir ${common}`;
    else {
      const hash = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
      out[p] = `file ${common} ${st.size} ${hash} ${Math.floor(st.mtimeMs / 1000)}`;
    }
  }
  return out;
}

// ---- images: tar → skiff's writer → an OCI layout → the registry --------------------------------

interface Version {
  tree: string;
  layer: ConvertedLayer;
}

async function makeVersion(work: string, version: 1 | 2): Promise<Version> {
  const tree = path.join(work, `tree-v${version}`);
  buildTree(tree, version);
  const tar = path.join(work, `v${version}.tar`);
  execFileSync('tar', ['--sort=name', '--numeric-owner', '--format=gnu', '-C', tree, '-cf', tar, '.']);
  const layout = path.join(work, `layout-v${version}`);
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const converted = path.join(work, `v${version}.zst`);
  const layer = await writeZstdChunked(fs.createReadStream(tar), converted);
  fs.renameSync(converted, path.join(blobs, layer.digest.slice(7)));
  writeLayout(layout, `v${version}`, layer);
  return { tree, layer };
}

function writeLayout(layout: string, tag: string, layer: ConvertedLayer): void {
  const put = (json: unknown) => {
    const bytes = Buffer.from(JSON.stringify(json));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  const config = put({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [layer.diffID] },
    history: [{ created: '2023-11-14T22:13:20Z', created_by: 'skiff zstd:chunked writer test' }],
  });
  const manifest = put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [
      { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: layer.annotations },
    ],
  });
  fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const ref = { 'org.opencontainers.image.ref.name': tag };
  const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: ref };
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
}

// ---- a proxy that counts the blob bytes it forwards ----------------------------------------------

interface CountingProxy {
  host: string;
  /** Response body bytes per blob digest, since the last reset. */
  blobBytes: Map<string, number>;
  close(): Promise<void>;
}

async function startCountingProxy(target: string): Promise<CountingProxy> {
  const blobBytes = new Map<string, number>();
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const server = http.createServer((req, res) => {
    const digest = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(req.url ?? '')?.[1];
    const upstream = http.request(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on('data', (chunk: Buffer) => {
          if (digest && req.method === 'GET')
            blobBytes.set(digest, (blobBytes.get(digest) ?? 0) + chunk.length);
        });
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    blobBytes,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- containers-storage, private root ------------------------------------------------------------

function storageConf(root: string): string {
  const conf = path.join(root, 'storage.conf');
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(
    conf,
    [
      '[storage]',
      'driver = "overlay"',
      `runroot = "${path.join(root, 'run')}"`,
      `graphroot = "${path.join(root, 'graph')}"`,
      '[storage.options]',
      'pull_options = {enable_partial_images = "true", use_hard_links = "false"}',
      '',
    ].join('\n'),
  );
  return conf;
}

async function skopeoRun(conf: string, args: string[]): Promise<string> {
  const { stderr } = await execFileAsync(SKOPEO, ['--debug', ...args], {
    env: { ...process.env, CONTAINERS_STORAGE_CONF: conf },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stderr;
}

/** The overlay diff directory of the layer whose DiffID is `diffID`. */
function layerDiffDir(root: string, diffID: Digest): string {
  const layers = JSON.parse(
    fs.readFileSync(path.join(root, 'graph', 'overlay-layers', 'layers.json'), 'utf8'),
  );
  const layer = layers.find((l: { 'diff-digest'?: string }) => l['diff-digest'] === diffID);
  expect(layer, `a layer with DiffID ${diffID} in containers-storage`).toBeDefined();
  return path.join(root, 'graph', 'overlay', layer.id, 'diff');
}

function removeStorage(root: string): void {
  // The overlay driver bind-mounts its own directory; it has to go before the files can.
  const mountPoint = path.join(root, 'graph', 'overlay');
  if (fs.readFileSync('/proc/self/mounts', 'utf8').includes(` ${mountPoint} `)) {
    execFileSync('umount', [mountPoint]);
  }
  fs.rmSync(root, { recursive: true, force: true });
}

/** The digest of an exported layer's tar, whatever compression skopeo chose for the export. */
async function sha256OfLayer(blob: Buffer, mediaType: string): Promise<string> {
  let bytes = blob;
  if (mediaType.endsWith('+gzip')) bytes = zlib.gunzipSync(blob);
  if (mediaType.endsWith('+zstd')) {
    const parts: Buffer[] = [];
    for await (const part of Readable.from([blob]).pipe(new DecompressStream())) parts.push(part as Buffer);
    bytes = Buffer.concat(parts);
  }
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The TOC (offsets dropped: compression differs) and the uncompressed tar-split of a layer. */
function chunkedMetadata(
  blob: Buffer,
  layer: { digest: Digest; mediaType: string; annotations?: Record<string, string> },
) {
  const info = detectLayerFormat({ ...layer, size: blob.length }).chunked as ZstdChunkedInfo;
  const part = (p: { offset: number; length: number; uncompressedLength: number }, what: string) =>
    decompressBounded(blob.subarray(p.offset, p.offset + p.length), p.uncompressedLength, what);
  const toc = JSON.parse(part(info.toc, 'TOC').toString('utf8'));
  const entries = toc.entries.map(({ offset: _o, endOffset: _e, ...rest }: Record<string, unknown>) => rest);
  return { entries, tarSplit: part(info.tarSplit!, 'tar-split').toString('utf8') };
}

// ---- tests -----------------------------------------------------------------------------------------

let work: string;
let registry: RunningRegistry;
let proxy: CountingProxy;
let v1: Version;
let v2: Version;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-zc-writer-it-'));
  registry = await startRegistry();
  proxy = await startCountingProxy(registry.host);
  v1 = await makeVersion(work, 1);
  v2 = await makeVersion(work, 2);
  const pusher = hasSkopeo ? SKOPEO : 'skopeo';
  for (const [version, tag] of [
    [1, 'v1'],
    [2, 'v2'],
  ] as const) {
    const layout = path.join(work, `layout-v${version}`);
    await skopeoCopy(
      `oci:${layout}:${tag}`,
      `docker://${registry.host}/conv/app:${tag}`,
      ['--preserve-digests'],
      pusher,
    );
  }
});

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  if (work) {
    removeStorage(path.join(work, 'containers-storage'));
    fs.rmSync(work, { recursive: true, force: true });
  }
});

describe('layers written by writeZstdChunked', () => {
  it.skipIf(!hasSkopeo)('have the TOC and tar-split skopeo 1.18 writes for the same tar', async () => {
    const tree = path.join(work, 'tree-v1');
    for (const format of ['gnu', 'posix']) {
      const tar = path.join(work, `same-${format}.tar`);
      execFileSync('tar', [
        '--sort=name',
        '--numeric-owner',
        `--format=${format}`,
        '-C',
        tree,
        '-cf',
        tar,
        '.',
      ]);
      const source = path.join(work, `same-${format}-source`);
      writeSourceLayout(
        source,
        [writeImage(source, { platform: parsePlatform('linux/amd64'), layers: [tar] })],
        'x',
      );
      const converted = path.join(work, `same-${format}-skopeo`);
      await skopeoRun(storageConf(path.join(work, 'unused-storage')), [
        'copy',
        '--dest-compress-format',
        'zstd:chunked',
        `oci:${source}:x`,
        `oci:${converted}:x`,
      ]);
      const read = (dir: string, digest: string) =>
        fs.readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
      const index = JSON.parse(fs.readFileSync(path.join(converted, 'index.json'), 'utf8'));
      const [theirLayer] = JSON.parse(read(converted, index.manifests[0].digest).toString('utf8')).layers;
      const theirs = chunkedMetadata(read(converted, theirLayer.digest), theirLayer);
      const out = path.join(work, `same-${format}.zst`);
      const ours = await writeZstdChunked(fs.createReadStream(tar), out);
      const mine = chunkedMetadata(fs.readFileSync(out), ours);
      expect(mine.entries).toEqual(theirs.entries);
      expect(mine.tarSplit).toBe(theirs.tarSplit);
    }
  });

  it.skipIf(!hasSkopeo)(
    'are pulled partially by skopeo 1.18 into containers-storage, v2 fetching little',
    async () => {
      const root = path.join(work, 'containers-storage');
      const conf = storageConf(root);
      const pullTag = (tag: string) =>
        skopeoRun(conf, [
          'copy',
          '--src-tls-verify=false',
          `docker://${proxy.host}/conv/app:${tag}`,
          `containers-storage:conv/app:${tag}`,
        ]);

      const log1 = await pullTag('v1');
      expect(log1).toContain('Created zstd:chunked differ');
      expect(log1).toContain('Retrieved partial blob');
      expect(snapshot(layerDiffDir(root, v1.layer.diffID))).toEqual(snapshot(v1.tree));

      proxy.blobBytes.clear();
      const log2 = await pullTag('v2');
      expect(log2).toContain('Retrieved partial blob');
      const fetched = proxy.blobBytes.get(v2.layer.digest) ?? 0;
      console.log(
        `skopeo partial pull of v2: ${fetched} of ${v2.layer.size} blob bytes fetched; ` +
          (/Missing \d+ bytes out of \d+ \([\d.]+ %\)/.exec(log2)?.[0] ?? ''),
      );
      // Two 24 KiB files, one 64 KiB-ish chunk of the big file, a new file, the TOC and the tar-split.
      expect(fetched).toBeGreaterThan(0);
      expect(fetched).toBeLessThan(v2.layer.size * 0.15);
      expect(snapshot(layerDiffDir(root, v2.layer.diffID))).toEqual(snapshot(v2.tree));

      // Exporting rebuilds the tar from the tar-split and the files: its digest must be the DiffID.
      const exported = path.join(work, 'exported');
      await skopeoRun(conf, ['copy', 'containers-storage:conv/app:v2', `oci:${exported}:v2`]);
      const index = JSON.parse(fs.readFileSync(path.join(exported, 'index.json'), 'utf8'));
      const blob = (digest: string) =>
        fs.readFileSync(path.join(exported, 'blobs', 'sha256', digest.slice(7)));
      const manifest = JSON.parse(blob(index.manifests[0].digest).toString('utf8'));
      const [layer] = manifest.layers;
      expect(await sha256OfLayer(blob(layer.digest), layer.mediaType)).toBe(v2.layer.diffID);
    },
  );

  it('are pulled partially by skiff, v2 after v1, and unpack to the source tree', async () => {
    const store = await Store.open(path.join(work, 'skiff-store'));
    const client = new RegistryClient();
    try {
      const report1 = await pull({ reference: `${proxy.host}/conv/app:v1`, store, client });
      expect(report1.layers[0]!.diffID).toBe(v1.layer.diffID);
      proxy.blobBytes.clear();
      const report2 = await pull({ reference: `${proxy.host}/conv/app:v2`, store, client });
      const layer = report2.layers[0]!;
      const fetched = proxy.blobBytes.get(v2.layer.digest) ?? 0;
      console.log(
        `skiff pull of v2: method ${layer.method}, ${layer.bytesFetched} bytes fetched (${fetched} at the proxy) of ${v2.layer.size}`,
      );
      expect(layer).toMatchObject({ method: 'partial', format: 'zstd:chunked', diffID: v2.layer.diffID });
      expect(fetched).toBeLessThan(v2.layer.size * 0.15);
      for (const [version, diffID] of [
        [v1, v1.layer.diffID],
        [v2, v2.layer.diffID],
      ] as const) {
        const target = path.join(work, `unpacked-${diffID.slice(7, 15)}`);
        await unpack(store, [diffID], target);
        expect(snapshot(target)).toEqual(snapshot(version.tree));
      }
    } finally {
      await client.close();
    }
  });
});
