// Issue 14 item 4: mirror carries what refers to an image. A signature written by skopeo 1.18
// (cosign's `sha256-<hex>.sig` tag) and an SBOM pushed by hand as an OCI artifact with `subject`
// (listed under the referrers tag schema, since Debian's registry 2.8 has no referrers API) follow
// the image registry → registry with their digests, and skopeo 1.18 and skiff verify the copy with
// a policy; --no-referrers carries nothing; a re-run copies nothing. With --all, the signatures
// skopeo 1.18 writes for each platform's manifest (and an SBOM attached to one) follow the index.
// Into an OCI layout and out of it again, the same artifacts travel as index.json entries.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { fixtureRef } from '../harness/registry.js';

const run = promisify(execFile);
const SKOPEO = '/opt/skopeo-modern/skopeo';
const registry = inject('registry');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SPDX = 'application/spdx+json';
const SOURCE = `supply-${process.pid}/app`;
const MULTI = `supply-${process.pid}/multi`;
let work: { dir: string; cleanup: () => void };
const file = (name: string) => path.join(work.dir, name);
const digestOf = (bytes: Buffer) => `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
const hex = (digest: string) => digest.slice('sha256:'.length);

async function uploadBlob(repo: string, bytes: Buffer): Promise<string> {
  const digest = digestOf(bytes);
  const start = await fetch(`http://${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const url = new URL(start.headers.get('location')!, `http://${registry}`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', body: bytes });
  expect(put.status).toBe(201);
  return digest;
}

async function putManifest(repo: string, reference: string, bytes: Buffer, type: string): Promise<void> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': type },
  });
  expect(res.status, await res.text()).toBe(201);
}

async function getManifest(repo: string, reference: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${reference}`, {
    headers: { accept: [OCI_MANIFEST, OCI_INDEX].join(', ') },
  });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** An SBOM as an OCI artifact whose subject is the image, listed as a client does without the API. */
async function pushSbom(repo: string, subject: { mediaType: string; digest: string; size: number }) {
  const empty = Buffer.from('{}');
  const sbom = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'skiff test', packages: [] }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SPDX,
      config: {
        mediaType: 'application/vnd.oci.empty.v1+json',
        digest: await uploadBlob(repo, empty),
        size: 2,
      },
      layers: [{ mediaType: SPDX, digest: await uploadBlob(repo, sbom), size: sbom.length }],
      subject,
    }),
  );
  const digest = digestOf(manifest);
  await putManifest(repo, digest, manifest, OCI_MANIFEST);
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_MANIFEST, digest, size: manifest.length, artifactType: SPDX }],
  };
  await putManifest(repo, `sha256-${hex(subject.digest)}`, Buffer.from(JSON.stringify(index)), OCI_INDEX);
  return digest;
}

let image: { mediaType: string; digest: string; size: number };
let sbomDigest: string;
let multi: {
  digest: string;
  children: Array<{ mediaType: string; digest: string; size: number; platform?: { architecture: string } }>;
};
let multiSbom: string;
let policyFile: string;
let registriesD: string;

beforeAll(async () => {
  work = tempDir('skiff-supply-');
  fs.writeFileSync(file('pass'), 'secret\n');
  for (const prefix of ['key', 'mirror-key'])
    await run(SKOPEO, [
      'generate-sigstore-key',
      '--output-prefix',
      file(prefix),
      '--passphrase-file',
      file('pass'),
    ]);
  registriesD = file('registries.d');
  fs.mkdirSync(registriesD);
  fs.writeFileSync(
    path.join(registriesD, 'default.yaml'),
    'default-docker:\n  use-sigstore-attachments: true\n',
  );
  await run(SKOPEO, [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    '--registries.d',
    registriesD,
    '--sign-by-sigstore-private-key',
    file('key.private'),
    '--sign-passphrase-file',
    file('pass'),
    fixtureRef('gzip'),
    `docker://${registry}/${SOURCE}:v1`,
  ]);
  const top = await getManifest(SOURCE, 'v1');
  const mediaType = JSON.parse(top.bytes.toString()).mediaType as string;
  image = { mediaType, digest: digestOf(top.bytes), size: top.bytes.length };
  sbomDigest = await pushSbom(SOURCE, image);
  // skopeo 1.18 signs the index and each platform's manifest with --all.
  await run(SKOPEO, [
    'copy',
    '-q',
    '--all',
    '--dest-tls-verify=false',
    '--registries.d',
    registriesD,
    '--sign-by-sigstore-private-key',
    file('key.private'),
    '--sign-passphrase-file',
    file('pass'),
    fixtureRef('multi'),
    `docker://${registry}/${MULTI}:v1`,
  ]);
  const index = await getManifest(MULTI, 'v1');
  multi = { digest: digestOf(index.bytes), children: JSON.parse(index.bytes.toString()).manifests };
  const amd64 = multi.children.find((m) => m.platform?.architecture === 'amd64')!;
  multiSbom = await pushSbom(MULTI, { mediaType: amd64.mediaType, digest: amd64.digest, size: amd64.size });
  // The signature names the source; a mirror's policy maps its own names onto it (remapIdentity).
  const signed = (prefix: string) => [
    {
      type: 'sigstoreSigned',
      keyPath: file('key.pub'),
      signedIdentity: { type: 'remapIdentity', prefix, signedPrefix: `${registry}/${SOURCE}` },
    },
  ];
  const scopes: Record<string, unknown[]> = {};
  for (const name of ['carried', 'bare', 'from-layout']) {
    const repo = `${registry}/supply-${process.pid}/${name}`;
    scopes[repo] = signed(repo);
  }
  for (const name of ['multi-carried', 'multi-bare']) {
    const repo = `${registry}/supply-${process.pid}/${name}`;
    scopes[repo] = [
      {
        type: 'sigstoreSigned',
        keyPath: file('key.pub'),
        signedIdentity: { type: 'remapIdentity', prefix: repo, signedPrefix: `${registry}/${MULTI}` },
      },
    ];
  }
  // What skiff signs names the destination itself: the default identity rule applies.
  for (const name of ['resigned', 'multi-resigned'])
    scopes[`${registry}/supply-${process.pid}/${name}`] = [
      { type: 'sigstoreSigned', keyPath: file('mirror-key.pub') },
    ];
  policyFile = file('policy.json');
  fs.writeFileSync(
    policyFile,
    JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: scopes } }),
  );
});
afterAll(() => work?.cleanup());

async function mirror(destination: string, extra: string[] = []) {
  const result = await runCli([
    'mirror',
    '--json',
    ...extra,
    `docker://${registry}/${SOURCE}:v1`,
    `docker://${registry}/supply-${process.pid}/${destination}:v1`,
  ]);
  const line = JSON.parse(result.stdout.trim().split('\n')[0]!) as Record<string, unknown>;
  return { ...result, line };
}

async function skopeoVerifies(repo: string, reference = ':v1'): Promise<boolean> {
  const dest = fs.mkdtempSync(file('skopeo-out-'));
  try {
    await run(SKOPEO, [
      'copy',
      '-q',
      '--src-tls-verify=false',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      `docker://${registry}/supply-${process.pid}/${repo}${reference}`,
      `dir:${dest}`,
    ]);
    return true;
  } catch {
    return false;
  }
}

async function skiffVerifies(repo: string) {
  return runCli(
    [
      'pull',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      `${registry}/supply-${process.pid}/${repo}:v1`,
    ],
    { SKIFF_STORE: fs.mkdtempSync(file('store-')) },
  );
}

describe('mirror carries signatures and referrers', () => {
  it('copies the cosign signature and the SBOM, digests kept; skopeo 1.18 and skiff verify the copy', async () => {
    const first = await mirror('carried');
    expect(first.code, first.stderr).toBe(0);
    expect(first.line).toMatchObject({ manifestDigest: image.digest, referrersCopied: 2, error: null });

    const dst = `supply-${process.pid}/carried`;
    const sigTag = `sha256-${hex(image.digest)}.sig`;
    expect((await getManifest(dst, sigTag)).bytes).toEqual((await getManifest(SOURCE, sigTag)).bytes);
    expect(digestOf((await getManifest(dst, sbomDigest)).bytes)).toBe(sbomDigest);
    // No referrers API at the destination: the tag schema lists the SBOM there.
    const listed = JSON.parse((await getManifest(dst, `sha256-${hex(image.digest)}`)).bytes.toString());
    expect(listed.manifests).toEqual([expect.objectContaining({ digest: sbomDigest, artifactType: SPDX })]);

    expect(await skopeoVerifies('carried')).toBe(true);
    const pulled = await skiffVerifies('carried');
    expect(pulled.code, pulled.stderr).toBe(0);
  });

  it('a re-run copies nothing and leaves the referrers index as it was', async () => {
    const dst = `supply-${process.pid}/carried`;
    const before = await getManifest(dst, `sha256-${hex(image.digest)}`);
    const again = await mirror('carried');
    expect(again.code, again.stderr).toBe(0);
    expect(again.line).toMatchObject({ upToDate: true, referrersCopied: 0, blobsCopied: 0 });
    expect((await getManifest(dst, `sha256-${hex(image.digest)}`)).bytes).toEqual(before.bytes);
    expect(again.stdout).not.toContain('"error":{');
  });

  it('--no-referrers carries nothing, and the copy no longer verifies', async () => {
    const bare = await mirror('bare', ['--no-referrers']);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.line).toMatchObject({ manifestDigest: image.digest, referrersCopied: null });
    const dst = `supply-${process.pid}/bare`;
    expect((await getManifest(dst, `sha256-${hex(image.digest)}.sig`)).status).toBe(404);
    expect((await getManifest(dst, sbomDigest)).status).toBe(404);
    expect(await skopeoVerifies('bare')).toBe(false);
    expect((await skiffVerifies('bare')).code).toBe(6);
  });

  it('to a dir: destination: carries none, and says so in a note', async () => {
    const result = await runCli([
      'mirror',
      '--json',
      `docker://${registry}/${SOURCE}:v1`,
      `dir:${file('dir-copy')}`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const line = JSON.parse(result.stdout.trim().split('\n')[0]!);
    expect(line).toMatchObject({ referrersCopied: null, error: null });
    expect(line.notes).toEqual([
      'signatures, attestations and SBOMs that refer to it are not carried to a dir: destination',
    ]);
  });

  it('says how many it carried in the human line', async () => {
    const result = await runCli([
      'mirror',
      `docker://${registry}/${SOURCE}:v1`,
      `docker://${registry}/supply-${process.pid}/human:v1`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^mirrored .* \(.*, 2 referrers copied, /m);
  });
});

describe('mirror --all of a multi-arch index', () => {
  it("carries each platform manifest's signatures and referrers, not only the index's", async () => {
    const dst = `supply-${process.pid}/multi-carried`;
    const result = await runCli([
      'mirror',
      '--json',
      '--all',
      `docker://${registry}/${MULTI}:v1`,
      `docker://${registry}/${dst}:v1`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const line = JSON.parse(result.stdout.trim().split('\n')[0]!);
    // skopeo signed the index and each of its platform manifests; one SBOM refers to amd64's.
    const signatures = 1 + multi.children.length;
    expect(line).toMatchObject({
      manifestDigest: multi.digest,
      referrersCopied: signatures + 1,
      error: null,
    });
    for (const digest of [multi.digest, ...multi.children.map((m) => m.digest)]) {
      const tag = `sha256-${hex(digest)}.sig`;
      expect((await getManifest(dst, tag)).bytes, tag).toEqual((await getManifest(MULTI, tag)).bytes);
    }
    const amd64 = multi.children.find((m) => m.platform?.architecture === 'amd64')!;
    expect(digestOf((await getManifest(dst, multiSbom)).bytes)).toBe(multiSbom);
    const listed = JSON.parse((await getManifest(dst, `sha256-${hex(amd64.digest)}`)).bytes.toString());
    expect(listed.manifests).toEqual([expect.objectContaining({ digest: multiSbom })]);

    // A platform's manifest verifies at the destination by its own signature, for skopeo 1.18 and skiff.
    expect(await skopeoVerifies('multi-carried', `@${amd64.digest}`)).toBe(true);
    const pulled = await skiffVerifies('multi-carried');
    expect(pulled.code, pulled.stderr).toBe(0);

    const again = await runCli([
      'mirror',
      '--json',
      '--all',
      `docker://${registry}/${MULTI}:v1`,
      `docker://${registry}/${dst}:v1`,
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n')[0]!)).toMatchObject({
      upToDate: true,
      referrersCopied: 0,
    });
  });
});

describe('mirror --all --sign-by-sigstore-private-key', () => {
  it('signs the index and each platform manifest, as skopeo 1.18 does; a platform pulled from it verifies', async () => {
    const dst = `supply-${process.pid}/multi-resigned`;
    const signed = await runCli([
      'mirror',
      '--json',
      '--all',
      '--no-referrers',
      '--sign-by-sigstore-private-key',
      file('mirror-key.private'),
      '--sign-passphrase-file',
      file('pass'),
      `docker://${registry}/${MULTI}:v1`,
      `docker://${registry}/${dst}:v1`,
    ]);
    expect(signed.code, signed.stderr).toBe(0);
    expect(JSON.parse(signed.stdout.trim().split('\n')[0]!)).toMatchObject({
      manifestDigest: multi.digest,
      signed: true,
    });
    for (const digest of [multi.digest, ...multi.children.map((m) => m.digest)])
      expect((await getManifest(dst, `sha256-${hex(digest)}.sig`)).status, digest).toBe(200);
    const amd64 = multi.children.find((m) => m.platform?.architecture === 'amd64')!;
    expect(await skopeoVerifies('multi-resigned', `@${amd64.digest}`)).toBe(true);
    const pulled = await skiffVerifies('multi-resigned');
    expect(pulled.code, pulled.stderr).toBe(0);
  });
});

describe('referrers into and out of an OCI layout', () => {
  const layout = () => file('layout');
  const entries = () =>
    JSON.parse(fs.readFileSync(path.join(layout(), 'index.json'), 'utf8')).manifests as Array<{
      digest: string;
      mediaType: string;
      artifactType?: string;
      annotations?: Record<string, string>;
    }>;
  const refName = 'org.opencontainers.image.ref.name';

  it('registry → oci:DIR: the cosign tag as a named entry, the SBOM as an untagged entry with its subject', async () => {
    const result = await runCli([
      'mirror',
      '--json',
      `docker://${registry}/${SOURCE}:v1`,
      `oci:${layout()}:v1`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({
      manifestDigest: image.digest,
      referrersCopied: 2,
      notes: [],
    });
    const sigTag = `sha256-${hex(image.digest)}.sig`;
    const sig = entries().find((e) => e.annotations?.[refName] === sigTag);
    expect(sig?.digest).toBe(digestOf((await getManifest(SOURCE, sigTag)).bytes));
    const sbom = entries().find((e) => e.digest === sbomDigest);
    expect(sbom).toMatchObject({ mediaType: OCI_MANIFEST, artifactType: SPDX });
    expect(sbom?.annotations?.[refName]).toBeUndefined();
    const stored = fs.readFileSync(path.join(layout(), 'blobs', 'sha256', hex(sbomDigest)));
    expect(JSON.parse(stored.toString()).subject.digest).toBe(image.digest);

    const again = await runCli([
      'mirror',
      '--json',
      `docker://${registry}/${SOURCE}:v1`,
      `oci:${layout()}:v1`,
    ]);
    expect(JSON.parse(again.stdout.trim().split('\n')[0]!)).toMatchObject({
      upToDate: true,
      referrersCopied: 0,
    });
    expect(entries()).toHaveLength(3);
  });

  it('oci:DIR → registry: they follow, and skopeo 1.18 verifies the copy', async () => {
    const dst = `supply-${process.pid}/from-layout`;
    const result = await runCli(['mirror', '--json', `oci:${layout()}:v1`, `docker://${registry}/${dst}:v1`]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({
      manifestDigest: image.digest,
      referrersCopied: 2,
    });
    const listed = JSON.parse((await getManifest(dst, `sha256-${hex(image.digest)}`)).bytes.toString());
    expect(listed.manifests).toEqual([expect.objectContaining({ digest: sbomDigest, artifactType: SPDX })]);
    expect(await skopeoVerifies('from-layout')).toBe(true);
  });

  it('the layout without a tag still names its one image: signatures and SBOMs beside it are not images', async () => {
    const result = await runCli(['mirror', '--json', `oci:${layout()}`, `oci:${file('layout-copy')}:x`]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({
      manifestDigest: image.digest,
      referrersCopied: 2,
    });
  });
});

describe('mirror --sign-by-sigstore-private-key', () => {
  const sign = () => [
    '--sign-by-sigstore-private-key',
    file('mirror-key.private'),
    '--sign-passphrase-file',
    file('pass'),
  ];

  it('signs what it pushes with a key skopeo 1.18 wrote; skopeo 1.18 and skiff accept it with that key', async () => {
    const signed = await mirror('resigned', sign());
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.line).toMatchObject({ manifestDigest: image.digest, signed: true, referrersCopied: 2 });
    // The carried signature stays beside skiff's own in the one .sig manifest.
    const sig = await getManifest(`supply-${process.pid}/resigned`, `sha256-${hex(image.digest)}.sig`);
    expect(JSON.parse(sig.bytes.toString()).layers).toHaveLength(2);
    expect(await skopeoVerifies('resigned')).toBe(true);
    const pulled = await skiffVerifies('resigned');
    expect(pulled.code, pulled.stderr).toBe(0);

    const again = await mirror('resigned', sign());
    expect(again.code, again.stderr).toBe(0);
    expect(again.line).toMatchObject({ upToDate: true, signed: false, referrersCopied: 0 });
    const unchanged = await getManifest(`supply-${process.pid}/resigned`, `sha256-${hex(image.digest)}.sig`);
    expect(unchanged.bytes).toEqual(sig.bytes);
  });

  it('a wrong passphrase is one usage error naming the key, before anything is copied', async () => {
    fs.writeFileSync(file('wrong'), 'not it\n');
    const result = await runCli([
      'mirror',
      '--sign-by-sigstore-private-key',
      file('mirror-key.private'),
      '--sign-passphrase-file',
      file('wrong'),
      `docker://${registry}/${SOURCE}:v1`,
      `docker://${registry}/supply-${process.pid}/never:v1`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `skiff: private key ${file('mirror-key.private')}: wrong passphrase (the key does not decrypt)`,
    );
    expect((await getManifest(`supply-${process.pid}/never`, 'v1')).status).toBe(404);
  });
});

/**
 * A registry with the referrers API, as far as this test needs one: the real registry behind a
 * loopback proxy that indexes manifests PUT with a `subject` (answering `OCI-Subject`, as the spec
 * says) and serves `GET /v2/<name>/referrers/<digest>` from that index.
 */
async function referrersApiRegistry() {
  const index = new Map<string, unknown[]>();
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const listed = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    if (req.method === 'GET' && listed) {
      res.writeHead(200, { 'content-type': OCI_INDEX });
      res.end(
        JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: index.get(listed[2]!) ?? [] }),
      );
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k !== 'host') headers[k] = v;
    const upstream = await fetch(`http://${registry}${req.url}`, {
      method: req.method!,
      headers,
      ...(body.length ? { body } : {}),
      redirect: 'manual',
    });
    const out: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (k !== 'content-encoding' && k !== 'transfer-encoding') out[k] = v;
    });
    const isManifestPut = req.method === 'PUT' && /\/manifests\//.test(req.url ?? '');
    if (isManifestPut && upstream.status === 201) {
      const doc = JSON.parse(body.toString()) as { subject?: { digest: string }; artifactType?: string };
      if (doc.subject) {
        const list = index.get(doc.subject.digest) ?? [];
        list.push({
          mediaType: OCI_MANIFEST,
          digest: digestOf(body),
          size: body.length,
          artifactType: doc.artifactType,
        });
        index.set(doc.subject.digest, list);
        out['oci-subject'] = doc.subject.digest;
      }
    }
    res.writeHead(upstream.status, out);
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { host, index, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('a destination with the referrers API', () => {
  it('indexes the carried SBOM itself: no referrers tag is written there', async () => {
    const api = await referrersApiRegistry();
    try {
      const repo = `supply-${process.pid}/api`;
      const result = await runCli([
        'mirror',
        '--json',
        `docker://${registry}/${SOURCE}:v1`,
        `docker://${api.host}/${repo}:v1`,
      ]);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({ referrersCopied: 2 });
      expect(api.index.get(image.digest)).toEqual([expect.objectContaining({ digest: sbomDigest })]);
      expect((await getManifest(repo, `sha256-${hex(image.digest)}`)).status).toBe(404);
      expect(digestOf((await getManifest(repo, sbomDigest)).bytes)).toBe(sbomDigest);
    } finally {
      await api.stop();
    }
  });
});
