// Issue 14: sigstore bundles written by a real sigstore client, sigstore's own JavaScript signing
// library @sigstore/sign (what npm uses to publish provenance), attached to images as OCI
// referrers; skiff's accept/reject must be what the policy says for the right key, another key,
// another identity and a tampered payload, and keyless: the library asks a Fulcio for a certificate
// and a Rekor for a log entry over their real HTTP APIs, here two loopback servers the test runs
// (a CA from openssl issuing for the token's e-mail and issuer, a Rekor key signing the entry's SET
// and a one-entry tree's checkpoint), since no public instance can be reached from a test.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { bundleToJSON } from '@sigstore/bundle';
import { json } from '@sigstore/core';
import { DSSEBundleBuilder, FulcioSigner, RekorWitness, type Signer } from '@sigstore/sign';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { pushFixture } from '../harness/registry.js';
import { type FulcioSetup, makeFulcio, pushReferrerBundle } from '../harness/sigstore.js';

const run = promisify(execFile);
const registry = inject('registry');
const IN_TOTO = 'application/vnd.in-toto+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ISSUER = 'https://issuer.skiff.invalid';
const EMAIL = 'signer@skiff.invalid';
const REPO = `sigstore-sign-${process.pid}`;
let work: { dir: string; cleanup: () => void };
const file = (name: string) => path.join(work.dir, name);
const sha256hex = (bytes: Buffer | string) => crypto.createHash('sha256').update(bytes).digest('hex');

/** The in-toto statement cosign 3 signs for an image: the repository and the manifest digest. */
function statement(repository: string, digest: string, predicate: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: repository, digest: { sha256: digest.slice('sha256:'.length) } }],
      predicateType: 'https://sigstore.dev/cosign/sign/v1',
      predicate,
    }),
  );
}

/** A key-holding signer, as @sigstore/sign's Signer interface has callers plug one in. */
function keySigner(key: crypto.KeyObject): Signer {
  return {
    sign: async (data) => ({
      signature: crypto.sign('sha256', data, key),
      key: {
        $case: 'publicKey',
        publicKey: crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(),
      },
    }),
  };
}

async function bundleBy(builder: DSSEBundleBuilder, payload: Buffer): Promise<Buffer> {
  const bundle = await builder.create({ data: payload, type: IN_TOTO });
  return Buffer.from(JSON.stringify(bundleToJSON(bundle)));
}

/** Pushes the gzip fixture as REPO/name:v1 and returns its manifest descriptor. */
async function image(name: string) {
  await pushFixture(registry, 'gzip', `${REPO}/${name}:v1`);
  const res = await fetch(`http://${registry}/v2/${REPO}/${name}/manifests/v1`, {
    headers: { accept: OCI_MANIFEST },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { mediaType: OCI_MANIFEST, digest: `sha256:${sha256hex(bytes)}`, size: bytes.length };
}

async function serve(handler: (body: Record<string, unknown>) => Promise<unknown>) {
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      const answer = await handler(JSON.parse(Buffer.concat(chunks).toString()));
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    } catch (error) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: (error as Error).message }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Fulcio's `POST /api/v2/signingCert`: checks the proof of possession (the token's subject signed
 * by the key), then issues a leaf for that key with the token's e-mail as SAN and its issuer in
 * Fulcio's extensions, signed by the test CA.
 */
function fulcio(ca: FulcioSetup, dir: string) {
  let n = 0;
  return serve(async (body) => {
    const request = body as {
      credentials: { oidcIdentityToken: string };
      publicKeyRequest: { publicKey: { content: string }; proofOfPossession: string };
    };
    const claims = JSON.parse(
      Buffer.from(request.credentials.oidcIdentityToken.split('.')[1]!, 'base64url').toString(),
    ) as { iss: string; email: string };
    const publicKey = crypto.createPublicKey(request.publicKeyRequest.publicKey.content);
    const proof = Buffer.from(request.publicKeyRequest.proofOfPossession, 'base64');
    if (!crypto.verify('sha256', Buffer.from(claims.email), publicKey, proof))
      throw new Error('proof of possession does not verify');
    const p = (name: string) => path.join(dir, `${name}-${n}`);
    n++;
    fs.writeFileSync(p('key.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    fs.writeFileSync(
      p('leaf.ext'),
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=codeSigning',
        `subjectAltName=critical,email:${claims.email}`,
        `1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:${claims.iss}`,
      ].join('\n'),
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      path.join(dir, 'leaf.csr'),
      '-force_pubkey',
      p('key.pem'),
      '-CA',
      ca.caPath,
      '-CAkey',
      path.join(dir, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      p('leaf.ext'),
      '-out',
      p('leaf.pem'),
    ]);
    return {
      signedCertificateEmbeddedSct: {
        chain: { certificates: [fs.readFileSync(p('leaf.pem'), 'utf8'), ca.caPem] },
      },
    };
  });
}

/**
 * Rekor's `POST /api/v1/log/entries` for a `dsse` entry: the body Rekor stores (envelope and payload
 * hashes, the signature and its verifier), a SET over it, and an inclusion proof in a one-entry
 * tree whose checkpoint the Rekor key signs, as Rekor v1 answers.
 */
function rekor(key: crypto.KeyObject) {
  const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  const logID = sha256hex(spki);
  return serve(async (proposed) => {
    const content = (proposed as { spec: { proposedContent: { envelope: string; verifiers: string[] } } })
      .spec.proposedContent;
    const envelope = JSON.parse(content.envelope) as { payload: string; signatures: Array<{ sig: string }> };
    const body = Buffer.from(
      json.canonicalize({
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          envelopeHash: { algorithm: 'sha256', value: sha256hex(content.envelope) },
          payloadHash: { algorithm: 'sha256', value: sha256hex(Buffer.from(envelope.payload, 'base64')) },
          signatures: [{ signature: envelope.signatures[0]!.sig, verifier: content.verifiers[0] }],
        },
      }),
    ).toString('base64');
    const entry = { body, integratedTime: Math.floor(Date.now() / 1000), logIndex: 0, logID };
    const set = crypto.sign('sha256', Buffer.from(json.canonicalize(entry)), key);
    const root = crypto
      .createHash('sha256')
      .update(Buffer.concat([Buffer.from([0]), Buffer.from(body, 'base64')]))
      .digest();
    const note = `rekor.skiff.test - 1\n1\n${root.toString('base64')}\n`;
    const noteSignature = Buffer.concat([
      Buffer.from(logID, 'hex').subarray(0, 4),
      crypto.sign('sha256', Buffer.from(note), key),
    ]);
    return {
      [`${logID}${sha256hex(body)}`]: {
        ...entry,
        verification: {
          signedEntryTimestamp: set.toString('base64'),
          inclusionProof: {
            logIndex: 0,
            treeSize: 1,
            rootHash: root.toString('hex'),
            hashes: [],
            checkpoint: `${note}\n\u2014 rekor.skiff.test ${noteSignature.toString('base64')}\n`,
          },
        },
      },
    };
  });
}

/** An OIDC token as an issuer hands it out (unsigned: only the test's Fulcio reads it). */
function token(email: string): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ iss: ISSUER, sub: email, email, email_verified: true })}.`;
}

function pull(policy: string, name: string) {
  return runCli(
    [
      'pull',
      '--json',
      '--policy',
      policy,
      '--registries.d',
      file('registries.d'),
      `${registry}/${REPO}/${name}:v1`,
    ],
    { SKIFF_STORE: fs.mkdtempSync(file('store-')) },
  );
}

function writePolicy(name: string, requirement: Record<string, unknown>): string {
  const policy = file(`${name}.json`);
  fs.writeFileSync(
    policy,
    JSON.stringify({ default: [{ ...requirement, signedIdentity: { type: 'matchRepository' } }] }),
  );
  return policy;
}

beforeAll(() => {
  work = tempDir('skiff-sigstore-sign-');
  fs.mkdirSync(file('registries.d'));
  fs.writeFileSync(file('registries.d/default.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n');
});
afterAll(() => work?.cleanup());

describe('bundles from @sigstore/sign with a key', () => {
  const trusted = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let policy: string;

  beforeAll(async () => {
    fs.writeFileSync(file('trusted.pub'), trusted.publicKey.export({ type: 'spki', format: 'pem' }));
    policy = writePolicy('key-policy', { type: 'sigstoreSigned', keyPath: file('trusted.pub') });
    const byKey = (key: crypto.KeyObject) => new DSSEBundleBuilder({ signer: keySigner(key), witnesses: [] });
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const cases: Array<[string, (repo: string, digest: string) => Promise<Buffer>]> = [
      ['right-key', (repo, digest) => bundleBy(byKey(trusted.privateKey), statement(repo, digest))],
      ['other-key', (repo, digest) => bundleBy(byKey(other), statement(repo, digest))],
      [
        'other-identity',
        (_repo, digest) =>
          bundleBy(byKey(trusted.privateKey), statement(`${registry}/${REPO}/elsewhere`, digest)),
      ],
      [
        'tampered',
        async (repo, digest) => {
          const bundle = JSON.parse(
            (await bundleBy(byKey(trusted.privateKey), statement(repo, digest))).toString(),
          );
          // The same statement with another predicate: the signature no longer covers the payload.
          bundle.dsseEnvelope.payload = statement(repo, digest, { tampered: true }).toString('base64');
          return Buffer.from(JSON.stringify(bundle));
        },
      ],
    ];
    for (const [name, make] of cases) {
      const subject = await image(name);
      await pushReferrerBundle(
        registry,
        `${REPO}/${name}`,
        subject,
        await make(`${registry}/${REPO}/${name}`, subject.digest),
      );
    }
  });

  it('accepts the bundle signed by the policy key, and names the key', async () => {
    const result = await pull(policy, 'right-key');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).trust.acceptedBy).toEqual([
      expect.objectContaining({
        type: 'sigstoreSigned',
        signer: file('trusted.pub'),
        origin: expect.stringMatching(/^referrer sha256:/),
      }),
    ]);
  });

  for (const [name, reason] of [
    ['other-key', /referrer sha256:[0-9a-f]{12}: wrong key/],
    ['other-identity', /referrer sha256:[0-9a-f]{12}: identity mismatch \(signed for .*\/elsewhere@sha256:/],
    ['tampered', /referrer sha256:[0-9a-f]{12}: wrong key/],
  ] as const)
    it(`rejects ${name} (exit 6), saying why`, async () => {
      const result = await pull(policy, name);
      expect(result.code, result.stderr).toBe(6);
      expect(result.stderr).toMatch(reason);
    });
});

describe('keyless bundles from @sigstore/sign: Fulcio certificate and Rekor entry', () => {
  let ca: FulcioSetup;
  let stops: Array<() => Promise<void>> = [];
  let rightIdentity: string;

  beforeAll(async () => {
    const dir = file('fulcio');
    fs.mkdirSync(dir);
    ca = await makeFulcio(dir, EMAIL, ISSUER);
    const [f, r] = await Promise.all([fulcio(ca, dir), rekor(ca.rekorKey)]);
    stops = [f.stop, r.stop];
    const keyless = (email: string) =>
      new DSSEBundleBuilder({
        signer: new FulcioSigner({
          fulcioBaseURL: f.url,
          identityProvider: { getToken: async () => token(email) },
          retry: 0,
        }),
        witnesses: [new RekorWitness({ rekorBaseURL: r.url, retry: 0 })],
      });
    for (const [name, email] of [
      ['keyless', EMAIL],
      ['keyless-other-email', 'someone-else@skiff.invalid'],
    ] as const) {
      const subject = await image(name);
      const repo = `${registry}/${REPO}/${name}`;
      await pushReferrerBundle(
        registry,
        `${REPO}/${name}`,
        subject,
        await bundleBy(keyless(email), statement(repo, subject.digest)),
      );
    }
    rightIdentity = writePolicy('keyless-policy', {
      type: 'sigstoreSigned',
      fulcio: { caPath: ca.caPath, oidcIssuer: ISSUER, subjectEmail: EMAIL },
      rekorPublicKeyPath: ca.rekorPublicPath,
    });
  });
  afterAll(async () => {
    for (const stop of stops) await stop();
  });

  it('accepts the certificate the test Fulcio issued, logged by the test Rekor', async () => {
    const result = await pull(rightIdentity, 'keyless');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).trust.acceptedBy).toEqual([
      expect.objectContaining({ type: 'sigstoreSigned', signer: `${EMAIL} (${ISSUER})` }),
    ]);
  });

  it('rejects a certificate for another e-mail (exit 6, certificate identity)', async () => {
    const result = await pull(rightIdentity, 'keyless-other-email');
    expect(result.code, result.stderr).toBe(6);
    expect(result.stderr).toMatch(/referrer sha256:[0-9a-f]{12}: certificate identity/);
  });

  it('rejects the right certificate when the policy trusts another Rekor key (exit 6, rekor)', async () => {
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fs.writeFileSync(file('other-rekor.pub'), other.publicKey.export({ type: 'spki', format: 'pem' }));
    const policy = writePolicy('keyless-other-rekor', {
      type: 'sigstoreSigned',
      fulcio: { caPath: ca.caPath, oidcIssuer: ISSUER, subjectEmail: EMAIL },
      rekorPublicKeyPath: file('other-rekor.pub'),
    });
    const result = await pull(policy, 'keyless');
    expect(result.code, result.stderr).toBe(6);
    expect(result.stderr).toMatch(/referrer sha256:[0-9a-f]{12}: rekor/);
  });
});
