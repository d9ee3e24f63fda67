// Issue 14 items 1-3: pull and mirror obey containers-policy.json, with signatures written by the
// real tools (skopeo 1.18 with a cosign key into `sha256-….sig`, skopeo with a GPG key from Debian's
// gnupg into a lookaside directory), and accept or reject exactly as skopeo 1.18 does with the same
// policy.json and registries.d; a rejection is exit 6, one line naming the requirement and each
// signature's failure, before any layer is fetched and with nothing committed.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import { fixtureRef } from '../harness/registry.js';
import {
  cosignPayload,
  type FulcioSetup,
  keylessAnnotations,
  makeBundle,
  makeFulcio,
  pushCosignSignatures,
  pushReferrerBundle,
} from '../harness/sigstore.js';

const run = promisify(execFile);
const SKOPEO = '/opt/skopeo-modern/skopeo';
const registry = inject('registry');
let work: { dir: string; cleanup: () => void };
let proxy: CountingProxy;
let policyFile: string;
let registriesD: string;
let gnupgHome: string;
let n = 0;
const store = () => path.join(work.dir, `store-${n++}`);
const file = (name: string) => path.join(work.dir, name);

async function skopeo(args: string[], env: Record<string, string> = {}) {
  return run(SKOPEO, args, { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
}

/** Copies a fixture into the registry with skopeo 1.18, signing it as `sign` says. */
async function push(fixture: string, repoTag: string, sign: string[] = []) {
  await skopeo(
    [
      'copy',
      '-q',
      '--dest-tls-verify=false',
      '--registries.d',
      file('registries.d-write'),
      ...sign,
      fixtureRef(fixture),
      `docker://${registry}/${repoTag}`,
    ],
    { GNUPGHOME: gnupgHome },
  );
}

async function gpgKey(home: string, uid: string): Promise<string> {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  await run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'], {
    env,
  });
  const { stdout } = await run('gpg', ['--list-keys', '--with-colons', uid], { env });
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)![1]!;
  const exported = await run('gpg', ['--export', fingerprint], { env, encoding: 'buffer' });
  fs.writeFileSync(file(`${fingerprint}.gpg`), exported.stdout);
  return fingerprint;
}

/** Both skopeo's and skiff's view of one image under the policy. */
async function skopeoAccepts(repoTag: string, host = registry): Promise<boolean> {
  const dest = fs.mkdtempSync(file('skopeo-out-'));
  try {
    await skopeo([
      'copy',
      '-q',
      '--src-tls-verify=false',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      `docker://${host}/${repoTag}`,
      `dir:${dest}`,
    ]);
    return true;
  } catch {
    return false;
  }
}

async function pull(repoTag: string, extra: string[] = []) {
  const s = store();
  const result = await runCli(
    [
      'pull',
      '--json',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      ...extra,
      `${proxy.host}/${repoTag}`,
    ],
    { SKIFF_STORE: s },
  );
  return { ...result, store: s };
}

/** Layer digests of a pushed image, to see that none was fetched on a rejection. */
async function layerDigests(repoTag: string): Promise<string[]> {
  const [repo, tag] = repoTag.split(':');
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return ((await res.json()) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
}

let gpgTrusted: string;
let gpgOther: string;

beforeAll(async () => {
  work = tempDir('skiff-trust-');
  proxy = await startCountingProxy(registry);
  gnupgHome = file('gnupg');
  fs.writeFileSync(file('pass'), 'secret\n');
  for (const prefix of ['trusted', 'other'])
    await skopeo([
      'generate-sigstore-key',
      '--output-prefix',
      file(prefix),
      '--passphrase-file',
      file('pass'),
    ]);
  gpgTrusted = await gpgKey(gnupgHome, 'skiff trusted <trusted@skiff.invalid>');
  gpgOther = await gpgKey(gnupgHome, 'skiff other <other@skiff.invalid>');
  const sigs = `file://${file('lookaside')}`;
  fs.mkdirSync(file('registries.d-write'));
  fs.writeFileSync(
    file('registries.d-write/default.yaml'),
    `default-docker:\n  use-sigstore-attachments: true\n  lookaside-staging: ${sigs}\n`,
  );
  registriesD = file('registries.d');
  fs.mkdirSync(registriesD);
  fs.writeFileSync(
    path.join(registriesD, 'default.yaml'),
    `default-docker:\n  use-sigstore-attachments: true\n  lookaside: ${sigs}\n`,
  );
  const bySigstore = (key: string) => [
    '--sign-by-sigstore-private-key',
    file(key),
    '--sign-passphrase-file',
    file('pass'),
  ];
  await Promise.all([
    push('gzip', 'trust/signed:v1', bySigstore('trusted.private')),
    push('plain', 'trust/other-key:v1', bySigstore('other.private')),
    push('zstd', 'trust/unsigned:v1'),
    push('gzip', 'trust/wrong-identity:v1', [
      ...bySigstore('trusted.private'),
      '--sign-identity',
      `${registry}/trust/somewhere-else:v1`,
    ]),
    push('gzip', 'trust/open:v1'),
    push('gzip', 'trust/rejected:v1'),
    push('plain', 'trust/gpg:v1', ['--sign-by', gpgTrusted]),
    push('zstd', 'trust/gpg-other:v1', ['--sign-by', gpgOther]),
  ]);
  // A tag moved to an unsigned digest: the signature of the old one stays in the registry.
  await push('gzip', 'trust/moved:v1', bySigstore('trusted.private'));
  await push('zstd', 'trust/moved:v1');
  // A valid signature of one manifest filed under another's .sig tag: its payload names the first.
  await push('zstd', 'trust/signed:v2');
  const digestOf = async (tag: string) =>
    (
      await fetch(`http://${registry}/v2/trust/signed/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).headers.get('docker-content-digest')!;
  const sigTag = (digest: string) => `sha256-${digest.slice('sha256:'.length)}.sig`;
  const signature = await fetch(
    `http://${registry}/v2/trust/signed/manifests/${sigTag(await digestOf('v1'))}`,
    {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    },
  );
  const refiled = await fetch(
    `http://${registry}/v2/trust/signed/manifests/${sigTag(await digestOf('v2'))}`,
    {
      method: 'PUT',
      body: Buffer.from(await signature.arrayBuffer()),
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    },
  );
  expect(refiled.status).toBe(201);
  const scopes: Record<string, unknown[]> = {};
  for (const host of [registry, proxy.host]) {
    // skiff pulls through the counting proxy: the identity signed is the registry's.
    const signedIdentity =
      host === registry ? undefined : { type: 'remapIdentity', prefix: proxy.host, signedPrefix: registry };
    const sigstore = { type: 'sigstoreSigned', keyPath: file('trusted.pub'), signedIdentity };
    const gpg = { type: 'signedBy', keyType: 'GPGKeys', keyPath: file(`${gpgTrusted}.gpg`), signedIdentity };
    for (const repo of ['signed', 'other-key', 'unsigned', 'wrong-identity', 'moved'])
      scopes[`${host}/trust/${repo}`] = [sigstore];
    scopes[`${host}/trust/gpg`] = [gpg];
    scopes[`${host}/trust/gpg-other`] = [gpg];
    scopes[`${host}/trust/open`] = [{ type: 'insecureAcceptAnything' }];
  }
  policyFile = file('policy.json');
  fs.writeFileSync(
    policyFile,
    JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: scopes } }),
  );
});
afterAll(async () => {
  // The agent gpg started for the test's GNUPGHOME (and only that one).
  if (gnupgHome)
    await run('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: gnupgHome } }).catch(
      () => undefined,
    );
  await proxy?.stop();
  work?.cleanup();
});

const CASES: Array<{ image: string; accepted: boolean; why?: RegExp }> = [
  { image: 'trust/signed:v1', accepted: true },
  {
    image: 'trust/other-key:v1',
    accepted: false,
    why: /sigstoreSigned: sha256-[0-9a-f]{64}\.sig layer 0: wrong key/,
  },
  { image: 'trust/unsigned:v1', accepted: false, why: /sigstoreSigned: no signature/ },
  {
    image: 'trust/signed:v2',
    accepted: false,
    why: /layer 0: bad payload digest \(signs sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64}\)/,
  },
  {
    image: 'trust/wrong-identity:v1',
    accepted: false,
    why: /identity mismatch \(signed for [^ ]+\/trust\/somewhere-else:v1, remapIdentity\)/,
  },
  { image: 'trust/moved:v1', accepted: false, why: /sigstoreSigned: no signature/ },
  { image: 'trust/open:v1', accepted: true },
  {
    image: 'trust/rejected:v1',
    accepted: false,
    why: /reject: the policy rejects every image in this scope/,
  },
  { image: 'trust/gpg:v1', accepted: true },
  {
    image: 'trust/gpg-other:v1',
    accepted: false,
    why: /signedBy: lookaside signature-1: wrong key \(signed by key [0-9A-F]{16}/,
  },
];

describe('pull obeys containers-policy.json as skopeo 1.18 does', () => {
  for (const c of CASES) {
    it(`${c.image}: ${c.accepted ? 'accepted' : 'rejected'}, as skopeo 1.18 says`, async () => {
      expect(await skopeoAccepts(c.image)).toBe(c.accepted);
      proxy.reset();
      const result = await pull(c.image);
      if (c.accepted) {
        expect(result.code, result.stderr).toBe(0);
        return;
      }
      expect(result.code, result.stderr).toBe(6);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^skiff: ${proxy.host}/${c.image}: rejected by trust policy ${policyFile} `),
      );
      expect(lines[0]).toMatch(c.why!);
      expect(JSON.parse(result.stdout).error).toMatchObject({ kind: 'rejected-by-policy', exitCode: 6 });
      // Not one layer was asked for, and the store holds nothing.
      const layers = await layerDigests(c.image);
      expect(proxy.blobGets().filter((r) => layers.some((d) => r.path.endsWith(d)))).toEqual([]);
      const images = await runCli(['images', '--json'], { SKIFF_STORE: result.store });
      expect(images.stdout.includes(c.image)).toBe(false);
    });
  }

  it('says in --json which requirement accepted the image and with which key', async () => {
    const sigstore = JSON.parse((await pull('trust/signed:v1')).stdout);
    expect(sigstore.trust).toMatchObject({
      policy: policyFile,
      transport: 'docker',
      scope: `${proxy.host}/trust/signed`,
      acceptedBy: [
        {
          type: 'sigstoreSigned',
          signer: file('trusted.pub'),
          signedIdentity: `${registry}/trust/signed:v1`,
        },
      ],
    });
    const gpg = JSON.parse((await pull('trust/gpg:v1')).stdout);
    expect(gpg.trust.acceptedBy).toEqual([
      expect.objectContaining({
        type: 'signedBy',
        signer: `GPG ${gpgTrusted}`,
        origin: 'lookaside signature-1',
      }),
    ]);
    const open = JSON.parse((await pull('trust/open:v1')).stdout);
    expect(open.trust.acceptedBy).toEqual([{ type: 'insecureAcceptAnything' }]);
  });

  it('obeys the policy in every mode, convert-only and dry runs included', async () => {
    for (const extra of [['--mode', 'convert-only'], ['--mode', 'full'], ['--dry-run']]) {
      const rejected = await pull('trust/other-key:v1', extra);
      expect(rejected.code, rejected.stderr).toBe(6);
    }
    const accepted = await pull('trust/signed:v1', ['--mode', 'full']);
    expect(accepted.code, accepted.stderr).toBe(0);
  });

  it('refuses a malformed policy with one line naming the file and the fault', async () => {
    const bad = file('bad-policy.json');
    fs.writeFileSync(bad, JSON.stringify({ default: [{ type: 'sigstoreSigned' }] }));
    const result = await runCli(['pull', '--policy', bad, `${proxy.host}/trust/open:v1`], {
      SKIFF_STORE: store(),
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      `skiff: policy ${bad} is invalid: default.0: exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio`,
    ]);
  });

  it('with --verbose says which policy applies', async () => {
    const result = await pull('trust/open:v1', ['--verbose']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`skiff: trust policy: ${policyFile}\n`);
  });
});

describe('mirror obeys the policy for its source', () => {
  it('refuses a rejected source with exit 6 and writes nothing; copies an accepted one', async () => {
    const dest = file('mirror-rejected');
    const rejected = await runCli([
      'mirror',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      `docker://${proxy.host}/trust/other-key:v1`,
      `oci:${dest}:v1`,
    ]);
    expect(rejected.code, rejected.stderr).toBe(6);
    expect(rejected.stderr).toMatch(/rejected by trust policy .*sigstoreSigned: .*wrong key/);
    expect(fs.existsSync(path.join(dest, 'index.json'))).toBe(false);
    const accepted = await runCli([
      'mirror',
      '--json',
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      `docker://${proxy.host}/trust/signed:v1`,
      `oci:${file('mirror-accepted')}:v1`,
    ]);
    expect(accepted.code, accepted.stderr).toBe(0);
    const line = JSON.parse(accepted.stdout.split('\n')[0]!);
    expect(line.trust.acceptedBy[0]).toMatchObject({ type: 'sigstoreSigned', signer: file('trusted.pub') });
  });
});

describe('keyless signatures (Fulcio certificate, Rekor SET), as skopeo 1.18 judges them', () => {
  const EMAIL = 'signer@skiff.invalid';
  const ISSUER = 'https://issuer.skiff.invalid';
  let fulcio: FulcioSetup;
  let stranger: FulcioSetup;

  beforeAll(async () => {
    fs.mkdirSync(file('fulcio'));
    fs.mkdirSync(file('stranger'));
    [fulcio, stranger] = await Promise.all([
      makeFulcio(file('fulcio'), EMAIL, ISSUER),
      makeFulcio(file('stranger'), EMAIL, ISSUER),
    ]);
    await push('gzip', 'trust/keyless:v1');
    const head = await fetch(`http://${registry}/v2/trust/keyless/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const digest = head.headers.get('docker-content-digest')!;
    const payload = cosignPayload(`${registry}/trust/keyless:v1`, digest);
    await pushCosignSignatures(registry, 'trust/keyless', digest, [
      { payload, annotations: keylessAnnotations(fulcio, payload) },
    ]);
  });

  /** A policy whose default is a fulcio requirement; skiff reads through the proxy (remapIdentity). */
  function keylessPolicy(name: string, over: { caPath?: string; subjectEmail?: string; rekor?: string }) {
    const policy = file(`${name}.json`);
    const requirement = {
      type: 'sigstoreSigned',
      fulcio: {
        caPath: over.caPath ?? fulcio.caPath,
        oidcIssuer: ISSUER,
        subjectEmail: over.subjectEmail ?? EMAIL,
      },
      rekorPublicKeyPath: over.rekor ?? fulcio.rekorPublicPath,
      signedIdentity: { type: 'remapIdentity', prefix: proxy.host, signedPrefix: registry },
    };
    fs.writeFileSync(policy, JSON.stringify({ default: [requirement] }));
    return policy;
  }

  const VARIANTS = [
    { name: 'right CA, e-mail and Rekor key', over: {}, why: undefined },
    { name: 'another e-mail', over: { subjectEmail: 'someone@else.invalid' }, why: /certificate identity/ },
    {
      name: 'another CA',
      over: { caPath: 'stranger' },
      why: /untrusted certificate \(the certificate does not chain/,
    },
    {
      name: 'another Rekor key',
      over: { rekor: 'stranger' },
      why: /rekor \(the Rekor SET verifies with no trusted/,
    },
  ];
  for (const v of VARIANTS) {
    it(`${v.name}: ${v.why ? 'rejected' : 'accepted'}, as skopeo 1.18 says`, async () => {
      const policy = keylessPolicy(v.name.replaceAll(/\W/g, '-'), {
        ...v.over,
        ...(v.over.caPath ? { caPath: stranger.caPath } : {}),
        ...(v.over.rekor ? { rekor: stranger.rekorPublicPath } : {}),
      });
      const args = ['--policy', policy, '--registries.d', registriesD];
      const dest = fs.mkdtempSync(file('skopeo-out-'));
      const skopeoOk = await skopeo([
        'copy',
        '-q',
        '--src-tls-verify=false',
        ...args,
        `docker://${registry}/trust/keyless:v1`,
        `dir:${dest}`,
      ]).then(
        () => true,
        () => false,
      );
      expect(skopeoOk).toBe(v.why === undefined);
      const result = await runCli(['pull', '--json', ...args, `${proxy.host}/trust/keyless:v1`], {
        SKIFF_STORE: store(),
      });
      if (!v.why) {
        expect(result.code, result.stderr).toBe(0);
        expect(JSON.parse(result.stdout).trust.acceptedBy).toEqual([
          expect.objectContaining({ type: 'sigstoreSigned', signer: `${EMAIL} (${ISSUER})` }),
        ]);
        return;
      }
      expect(result.code, result.stderr).toBe(6);
      expect(result.stderr).toMatch(v.why);
    });
  }
});

describe('sigstore bundles found through the referrers tag schema', () => {
  const keys = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let trusted: crypto.KeyPairKeyObjectResult;
  let policy: string;

  beforeAll(async () => {
    trusted = keys();
    fs.writeFileSync(file('bundle.pub'), trusted.publicKey.export({ type: 'spki', format: 'pem' }));
    for (const [repo, key] of [
      ['trust/bundle', trusted.privateKey],
      ['trust/bundle-other-key', keys().privateKey],
    ] as const) {
      await push('gzip', `${repo}:v1`);
      const res = await fetch(`http://${registry}/v2/${repo}/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      const subject = {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: res.headers.get('docker-content-digest')!,
        size: bytes.length,
      };
      await pushReferrerBundle(
        registry,
        repo,
        subject,
        makeBundle(key, `${registry}/${repo}`, subject.digest),
      );
    }
    policy = file('bundle-policy.json');
    const requirement = {
      type: 'sigstoreSigned',
      keyPath: file('bundle.pub'),
      signedIdentity: { type: 'remapIdentity', prefix: proxy.host, signedPrefix: registry },
    };
    fs.writeFileSync(policy, JSON.stringify({ default: [requirement] }));
  });

  it('accepts a bundle signed by the policy key, and says so', async () => {
    const result = await runCli(
      ['pull', '--json', '--policy', policy, '--registries.d', registriesD, `${proxy.host}/trust/bundle:v1`],
      { SKIFF_STORE: store() },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).trust.acceptedBy).toEqual([
      expect.objectContaining({
        type: 'sigstoreSigned',
        signer: file('bundle.pub'),
        origin: expect.stringMatching(/^referrer sha256:/),
        signedIdentity: expect.stringMatching(new RegExp(`^${registry}/trust/bundle@sha256:`)),
      }),
    ]);
  });

  it('rejects a bundle signed by another key (exit 6, wrong key)', async () => {
    const result = await runCli(
      ['pull', '--policy', policy, '--registries.d', registriesD, `${proxy.host}/trust/bundle-other-key:v1`],
      { SKIFF_STORE: store() },
    );
    expect(result.code, result.stderr).toBe(6);
    expect(result.stderr).toMatch(/sigstoreSigned: referrer sha256:[0-9a-f]{12}: wrong key/);
  });
});

describe('local sources', () => {
  it('oci: layouts are judged by directory scope, and carry no signature skiff reads, as skopeo 1.18 says', async () => {
    const signedOnly = { type: 'sigstoreSigned', keyPath: file('trusted.pub') };
    const policy = file('local-policy.json');
    const gzip = fixtureRef('gzip').replace(/^oci:|:latest$/g, '');
    fs.writeFileSync(
      policy,
      JSON.stringify({
        default: [signedOnly],
        transports: { oci: { [gzip]: [{ type: 'insecureAcceptAnything' }] } },
      }),
    );
    for (const [fixture, accepted] of [
      ['gzip', true],
      ['zstd', false],
    ] as const) {
      const dest = fs.mkdtempSync(file('skopeo-out-'));
      const skopeoOk = await skopeo([
        'copy',
        '-q',
        '--policy',
        policy,
        fixtureRef(fixture),
        `dir:${dest}`,
      ]).then(
        () => true,
        () => false,
      );
      expect(skopeoOk).toBe(accepted);
      const result = await runCli(['pull', '--policy', policy, fixtureRef(fixture)], {
        SKIFF_STORE: store(),
      });
      expect(result.code, result.stderr).toBe(accepted ? 0 : 6);
      if (!accepted) expect(result.stderr).toContain('(default requirements): sigstoreSigned: no signature');
    }
  });
});

describe('lookaside over HTTP', () => {
  it('reads GPG signatures from an http: lookaside as from a file: one', async () => {
    const root = file('lookaside');
    const server = http.createServer((req, res) => {
      const target = path.join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      if (!target.startsWith(root) || !fs.existsSync(target)) return res.writeHead(404).end();
      res.writeHead(200).end(fs.readFileSync(target));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const dir = file('registries.d-http');
      fs.mkdirSync(dir);
      const { port } = server.address() as { port: number };
      fs.writeFileSync(
        path.join(dir, 'default.yaml'),
        `default-docker:\n  lookaside: http://127.0.0.1:${port}/\n`,
      );
      for (const [image, code] of [
        ['trust/gpg:v1', 0],
        ['trust/gpg-other:v1', 6],
      ] as const) {
        const result = await runCli(
          ['pull', '--policy', policyFile, '--registries.d', dir, `${proxy.host}/${image}`],
          { SKIFF_STORE: store() },
        );
        expect(result.code, result.stderr).toBe(code);
      }
    } finally {
      server.close();
    }
  });
});
