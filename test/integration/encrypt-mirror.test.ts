// Issue 14 item 5: `mirror --encryption-key jwe:PUB.pem` writes ocicrypt-encrypted images that the
// real tools read. Keys are made by openssl here; skopeo 1.18 decrypts what skiff encrypted (and
// fails with the wrong key), skiff pull reads it back with the private key (exit 4 without), and
// skopeo 1.18's own encryption still reads as before. Every decrypted image must be the plaintext
// one: the same layer blobs, the same config, hence the same DiffIDs and tree.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { expectCleanStderr, runCli, tempDir } from '../harness/cli.js';
import { expectedFixtureRootfs } from '../harness/expected-trees.js';
import { FIXTURES, skopeoCopy } from '../harness/registry.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';

const execFileAsync = promisify(execFile);
const SKOPEO_118 = '/opt/skopeo-modern/skopeo';
const ENC_JWE = 'org.opencontainers.image.enc.keys.jwe';
const ENC_PUBOPTS = 'org.opencontainers.image.enc.pubopts';
const registry = inject('registry');

interface Layer {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Layout {
  manifest: { mediaType: string; config: { digest: string }; layers: Layer[] };
  diffIDs: string[];
}

let work: { dir: string; cleanup: () => void };
let keys: string;
let expected: string;
let plain: Layout;
let counter = 0;

async function openssl(...args: string[]): Promise<void> {
  await execFileAsync('openssl', args);
}

beforeAll(async () => {
  work = tempDir('skiff-encrypt-');
  keys = path.join(work.dir, 'keys');
  fs.mkdirSync(keys);
  const key = (name: string) => path.join(keys, name);
  await openssl('genrsa', '-out', key('rsa.pem'), '2048');
  await openssl('rsa', '-in', key('rsa.pem'), '-pubout', '-out', key('rsa-pub.pem'));
  await openssl('genrsa', '-out', key('other-rsa.pem'), '2048');
  // PKCS#8 (genpkey): ocicrypt does not read SEC1 `EC PRIVATE KEY` files as decryption keys.
  for (const [name, curve] of [
    ['ec', 'P-256'],
    ['ec384', 'P-384'],
  ] as const) {
    await openssl(
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      `ec_paramgen_curve:${curve}`,
      '-out',
      key(`${name}.pem`),
    );
    await openssl('pkey', '-in', key(`${name}.pem`), '-pubout', '-out', key(`${name}-pub.pem`));
  }
  expected = expectedFixtureRootfs();
  plain = readLayout(path.join(FIXTURES, 'gzip'));
}, 60_000);
afterAll(() => {
  work?.cleanup();
  fs.rmSync(expected, { recursive: true, force: true });
});

function scratch(name: string): string {
  return path.join(work.dir, `${name}-${counter++}`);
}

/** An OCI layout's single image: its manifest and the config's DiffIDs. */
function readLayout(dir: string): Layout {
  const blob = (digest: string) =>
    JSON.parse(fs.readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8'));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const manifest = blob(index.manifests[0].digest);
  return { manifest, diffIDs: blob(manifest.config.digest).rootfs.diff_ids };
}

async function mirror(src: string, dst: string, ...flags: string[]) {
  const result = await runCli(['mirror', src, dst, ...flags]);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

/** skopeo 1.18 decrypts `ref` into a fresh oci: layout and returns it. */
async function skopeoDecrypt(ref: string, key: string): Promise<Layout> {
  const dir = scratch('decrypted');
  await skopeoCopy(ref, `oci:${dir}:latest`, ['--decryption-key', key], SKOPEO_118);
  return readLayout(dir);
}

/** The decrypted image is the plaintext one, blob for blob. */
function expectPlaintext(decrypted: Layout, source: Layout = plain): void {
  expect(decrypted.diffIDs).toEqual(source.diffIDs);
  expect(decrypted.manifest.config.digest).toBe(source.manifest.config.digest);
  expect(decrypted.manifest.layers.map((l) => l.digest)).toEqual(source.manifest.layers.map((l) => l.digest));
}

/** skiff pull with the private key: every layer decrypted, the config's DiffIDs, the fixture's tree. */
async function expectSkiffPulls(ref: string, key: string): Promise<void> {
  const store = scratch('store');
  const pulled = await runCli(['pull', ref, '--json', '--decryption-key', `jwe:${key}`], {
    SKIFF_STORE: store,
  });
  expect(pulled.code, pulled.stderr).toBe(0);
  const report = JSON.parse(pulled.stdout);
  expect(report.layers.map((l: { diffID: string }) => l.diffID)).toEqual(plain.diffIDs);
  const target = scratch('rootfs');
  const unpacked = await runCli(['unpack', ref, target], { SKIFF_STORE: store });
  expect(unpacked.code, unpacked.stderr).toBe(0);
  expect(diffSnapshots(snapshot(expected, { mtimes: true }), snapshot(target, { mtimes: true }))).toEqual([]);
}

describe('mirror --encryption-key', () => {
  it('RSA: skopeo 1.18 and skiff pull decrypt it to the plaintext image; skopeo with another key fails, skiff without one exits 4', async () => {
    const dst = `${registry}/encrypt/rsa:latest`;
    await mirror(
      `docker://${registry}/fixtures/gzip:latest`,
      `docker://${dst}`,
      '--encryption-key',
      `jwe:${keys}/rsa-pub.pem`,
    );
    const encrypted = scratch('encrypted');
    await skopeoCopy(`docker://${dst}`, `oci:${encrypted}:latest`, [], SKOPEO_118);
    const written = readLayout(encrypted);
    // Written as OCI, every layer encrypted for one recipient (flattened JWE, as go-jose writes it).
    expect(written.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(written.diffIDs).toEqual(plain.diffIDs);
    for (const layer of written.manifest.layers) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
      const jwe = JSON.parse(Buffer.from(layer.annotations![ENC_JWE]!, 'base64').toString());
      expect(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString())).toEqual({
        alg: 'RSA-OAEP',
        enc: 'A256GCM',
      });
      const pubopts = JSON.parse(Buffer.from(layer.annotations![ENC_PUBOPTS]!, 'base64').toString());
      expect(pubopts.cipher).toBe('AES_256_CTR_HMAC_SHA256');
    }
    expect(written.manifest.layers.map((l) => l.digest)).not.toContain(plain.manifest.layers[0]!.digest);

    expectPlaintext(await skopeoDecrypt(`docker://${dst}`, `${keys}/rsa.pem`));
    await expect(
      skopeoCopy(
        `docker://${dst}`,
        `oci:${scratch('refused')}:latest`,
        ['--decryption-key', `${keys}/other-rsa.pem`],
        SKOPEO_118,
      ),
    ).rejects.toThrow(/decrypting layer sha256:/);

    await expectSkiffPulls(dst, `${keys}/rsa.pem`);
    const noKey = await runCli(['pull', dst], { SKIFF_STORE: scratch('store') });
    expect(noKey.code).toBe(4);
    const line = expectCleanStderr(noKey);
    for (const layer of written.manifest.layers) expect(line).toContain(layer.digest.slice(0, 19));
    const wrongKey = await runCli(['pull', dst, '--decryption-key', `jwe:${keys}/other-rsa.pem`], {
      SKIFF_STORE: scratch('store'),
    });
    expect(wrongKey.code).toBe(4);
    expect(expectCleanStderr(wrongKey)).toContain('no decryption key fits');
  }, 120_000);

  it('EC keys and several recipients: one JWE every recipient opens, with skopeo 1.18 and with skiff', async () => {
    const dst = scratch('two');
    await mirror(
      `oci:${FIXTURES}/gzip:latest`,
      `oci:${dst}:latest`,
      '--encryption-key',
      `jwe:${keys}/ec-pub.pem`,
      '--encryption-key',
      `jwe:${keys}/ec384-pub.pem`,
      '--encryption-key',
      `jwe:${keys}/rsa-pub.pem`,
    );
    const written = readLayout(dst);
    for (const layer of written.manifest.layers) {
      const jwe = JSON.parse(Buffer.from(layer.annotations![ENC_JWE]!, 'base64').toString());
      expect(jwe.recipients.map((r: { header: { alg: string } }) => r.header.alg)).toEqual([
        'ECDH-ES+A256KW',
        'ECDH-ES+A256KW',
        'RSA-OAEP',
      ]);
    }
    for (const key of ['ec.pem', 'ec384.pem', 'rsa.pem']) {
      expectPlaintext(await skopeoDecrypt(`oci:${dst}:latest`, `${keys}/${key}`));
      await expectSkiffPulls(`oci:${dst}:latest`, `${keys}/${key}`);
    }
  }, 120_000);

  it('--encrypt-layer -1 encrypts the last layer only; a Docker image becomes OCI; a re-run is up to date', async () => {
    const dst = `${registry}/encrypt/last:latest`;
    const args = [
      `docker://${registry}/fixtures/v2s2:latest`,
      `docker://${dst}`,
      '--encryption-key',
      `jwe:${keys}/ec-pub.pem`,
      '--encrypt-layer=-1',
    ];
    await mirror(...(args as [string, string, ...string[]]));
    const encrypted = scratch('last');
    await skopeoCopy(`docker://${dst}`, `oci:${encrypted}:latest`, [], SKOPEO_118);
    const source = scratch('v2s2');
    await skopeoCopy(`docker://${registry}/fixtures/v2s2:latest`, `oci:${source}:latest`, [
      '--preserve-digests',
    ]);
    const original = readLayout(source);
    const written = readLayout(encrypted);
    expect(written.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(written.manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
    ]);
    expect(written.manifest.layers[0]!.digest).toBe(original.manifest.layers[0]!.digest);
    expectPlaintext(await skopeoDecrypt(`docker://${dst}`, `${keys}/ec.pem`), original);
    const again = await runCli(['mirror', ...args, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.split('\n')[0]!)).toMatchObject({ upToDate: true, blobsCopied: 0 });
  }, 120_000);

  it('leaves already-encrypted layers as they are, and refuses keys it cannot use before copying', async () => {
    const dst = scratch('partial');
    const result = await mirror(
      `oci:${FIXTURES}/encrypted-partial:latest`,
      `oci:${dst}:latest`,
      '--encryption-key',
      `jwe:${keys}/ec-pub.pem`,
    );
    expect(result.stdout).toContain('already-encrypted layers copied as they are');
    const source = readLayout(path.join(FIXTURES, 'encrypted-partial'));
    const written = readLayout(dst);
    expect(written.manifest.layers[1]).toEqual(source.manifest.layers[1]);
    expect(written.manifest.layers[0]!.mediaType).toBe(
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
    );
    // The first layer is now for the EC key, the second still for the fixture's RSA key.
    const decrypted = await skopeoDecrypt(`oci:${dst}:latest`, `${keys}/ec.pem`).catch((e: Error) => e);
    expect(decrypted).toBeInstanceOf(Error);

    for (const [flags, message] of [
      [['--encryption-key', `${keys}/rsa-pub.pem`], 'give jwe:PUBLIC_KEY_FILE'],
      [['--encryption-key', `jwe:${keys}/missing.pem`], 'cannot read encryption key'],
      [['--encrypt-layer', '0'], '--encrypt-layer needs --encryption-key'],
      [['--encryption-key', `jwe:${keys}/rsa-pub.pem`, '--encrypt-layer', '7'], 'the image has 2 layers'],
    ] as const) {
      const out = scratch('refused');
      const refused = await runCli(['mirror', `oci:${FIXTURES}/gzip:latest`, `oci:${out}:latest`, ...flags]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(expectCleanStderr(refused)).toContain(message);
      expect(fs.existsSync(path.join(out, 'index.json'))).toBe(false);
    }
  }, 120_000);
});

describe('skopeo 1.18 --encryption-key, read by skiff', () => {
  it('pulls what skopeo 1.18 encrypted for RSA and EC recipients: the plaintext DiffIDs and tree', async () => {
    const dst = `${registry}/encrypt/by-skopeo:latest`;
    await skopeoCopy(
      `oci:${FIXTURES}/gzip:latest`,
      `docker://${dst}`,
      ['--encryption-key', `jwe:${keys}/rsa-pub.pem`, '--encryption-key', `jwe:${keys}/ec-pub.pem`],
      SKOPEO_118,
    );
    for (const key of ['rsa.pem', 'ec.pem']) await expectSkiffPulls(dst, `${keys}/${key}`);
    // And skiff mirrors it on as it is: layers already encrypted are not touched.
    const copy = scratch('kept');
    await mirror(`docker://${dst}`, `oci:${copy}:latest`, '--encryption-key', `jwe:${keys}/ec384-pub.pem`);
    expect(readLayout(copy).manifest.layers.every((l) => l.mediaType.endsWith('+encrypted'))).toBe(true);
    expectPlaintext(await skopeoDecrypt(`oci:${copy}:latest`, `${keys}/rsa.pem`));
  }, 120_000);
});
