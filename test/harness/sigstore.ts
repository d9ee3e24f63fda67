// Keyless (Fulcio-style) cosign signatures made by the test: a CA and a short-lived leaf certificate
// from openssl carrying Fulcio's e-mail SAN and OIDC-issuer extension, a Rekor key that signs a SET
// for the hashedrekord entry, and the `sha256-<hex>.sig` manifest pushed as cosign lays it out.
// No tool here issues Fulcio certificates, so the test plays Fulcio and Rekor; skopeo 1.18 checks
// the result as the yardstick.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';
import { dsse, json } from '@sigstore/core';

const run = promisify(execFile);

export interface FulcioSetup {
  caPem: string;
  caPath: string;
  leafPem: string;
  leafKey: crypto.KeyObject;
  rekorKey: crypto.KeyObject;
  rekorPublicPath: string;
}

/** A CA, a leaf for `email` from `issuer` (Fulcio's extension OIDs), and a Rekor key pair. */
export async function makeFulcio(dir: string, email: string, issuer: string): Promise<FulcioSetup> {
  const p = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/O=skiff test/CN=fulcio',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    p('leaf.key'),
    '-out',
    p('leaf.csr'),
    '-subj',
    '/O=sigstore.dev',
  ]);
  fs.writeFileSync(
    p('leaf.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=codeSigning',
      `subjectAltName=critical,email:${email}`,
      // The old issuer extension holds the raw string, the new one a DER UTF8String.
      `1.3.6.1.4.1.57264.1.1=DER:${Buffer.from(issuer)
        .toString('hex')
        .replace(/(..)(?!$)/g, '$1:')}`,
      `1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:${issuer}`,
    ].join('\n'),
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    p('leaf.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('leaf.pem'),
    '-days',
    '1',
    '-extfile',
    p('leaf.ext'),
  ]);
  const rekor = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  fs.writeFileSync(p('rekor.pub'), rekor.publicKey.export({ type: 'spki', format: 'pem' }));
  return {
    caPem: fs.readFileSync(p('ca.pem'), 'utf8'),
    caPath: p('ca.pem'),
    leafPem: fs.readFileSync(p('leaf.pem'), 'utf8'),
    leafKey: crypto.createPrivateKey(fs.readFileSync(p('leaf.key'))),
    rekorKey: rekor.privateKey,
    rekorPublicPath: p('rekor.pub'),
  };
}

export function cosignPayload(reference: string, manifestDigest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': manifestDigest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** The cosign layer annotations of a keyless signature of `payload`, with a Rekor SET. */
export function keylessAnnotations(f: FulcioSetup, payload: Buffer): Record<string, string> {
  const signature = crypto.sign('sha256', payload, f.leafKey);
  const body = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: {
        hash: { algorithm: 'sha256', value: crypto.createHash('sha256').update(payload).digest('hex') },
      },
      signature: {
        content: signature.toString('base64'),
        publicKey: { content: Buffer.from(f.leafPem).toString('base64') },
      },
    },
  };
  const spki = crypto.createPublicKey(f.rekorKey).export({ type: 'spki', format: 'der' });
  const entry = {
    body: Buffer.from(JSON.stringify(body)).toString('base64'),
    integratedTime: Math.floor(Date.now() / 1000),
    logIndex: 1,
    logID: crypto.createHash('sha256').update(spki).digest('hex'),
  };
  const set = crypto.sign('sha256', Buffer.from(json.canonicalize(entry)), f.rekorKey);
  return {
    'dev.cosignproject.cosign/signature': signature.toString('base64'),
    'dev.sigstore.cosign/certificate': f.leafPem,
    'dev.sigstore.cosign/chain': f.caPem,
    'dev.sigstore.cosign/bundle': JSON.stringify({
      SignedEntryTimestamp: set.toString('base64'),
      Payload: entry,
    }),
  };
}

async function uploadBlob(registry: string, repo: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
  const start = await fetch(`http://${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, `http://${registry}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status}`);
  return digest;
}

/** Pushes `sha256-<hex>.sig` with one simple-signing layer per signature, as cosign does. */
export async function pushCosignSignatures(
  registry: string,
  repo: string,
  manifestDigest: string,
  signatures: Array<{ payload: Buffer; annotations: Record<string, string> }>,
): Promise<void> {
  const layers = [];
  for (const s of signatures) {
    const digest = await uploadBlob(registry, repo, s.payload);
    layers.push({
      mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
      digest,
      size: s.payload.length,
      annotations: s.annotations,
    });
  }
  const config = Buffer.from(
    JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [] }, config: {} }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await uploadBlob(registry, repo, config),
      size: config.length,
    },
    layers,
  };
  const tag = `sha256-${manifestDigest.slice('sha256:'.length)}.sig`;
  await putManifest(registry, repo, tag, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
}

/**
 * A sigstore bundle (v0.3, DSSE in-toto statement naming `repository` and `manifestDigest`) signed
 * with `key`, as cosign 3 attaches to an image. Built with sigstore's own bundle builder: no tool
 * here writes these bundles (cosign is not installed, skopeo 1.18 does not write them).
 */
export function makeBundle(key: crypto.KeyObject, repository: string, manifestDigest: string): Buffer {
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: repository, digest: { sha256: manifestDigest.slice('sha256:'.length) } }],
    predicateType: 'https://sigstore.dev/cosign/sign/v1',
    predicate: {},
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = crypto.sign('sha256', dsse.preAuthEncoding(IN_TOTO, payload), key);
  const bundle = bundleToJSON(
    toDSSEBundle({
      artifact: payload,
      artifactType: IN_TOTO,
      signature,
      keyHint: '',
    }),
  );
  return Buffer.from(JSON.stringify({ ...bundle, mediaType: SIGSTORE_BUNDLE }));
}

const IN_TOTO = 'application/vnd.in-toto+json';
const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY = Buffer.from('{}');

/**
 * Attaches `bundle` to the manifest as an OCI 1.1 referrer: an artifact manifest with `subject`,
 * listed in the referrers tag schema's index (`sha256-<hex>`), for registries without the API.
 */
export async function pushReferrerBundle(
  registry: string,
  repo: string,
  subject: { mediaType: string; digest: string; size: number },
  bundle: Buffer,
): Promise<void> {
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: SIGSTORE_BUNDLE,
    config: {
      mediaType: 'application/vnd.oci.empty.v1+json',
      digest: await uploadBlob(registry, repo, EMPTY),
      size: EMPTY.length,
    },
    layers: [
      { mediaType: SIGSTORE_BUNDLE, digest: await uploadBlob(registry, repo, bundle), size: bundle.length },
    ],
    subject,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
  await putManifest(registry, repo, digest, bytes, manifest.mediaType);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: manifest.mediaType, digest, size: bytes.length, artifactType: SIGSTORE_BUNDLE }],
  };
  const tag = `sha256-${subject.digest.slice('sha256:'.length)}`;
  await putManifest(registry, repo, tag, Buffer.from(JSON.stringify(index)), index.mediaType);
}

async function putManifest(registry: string, repo: string, reference: string, body: Buffer, type: string) {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: { 'content-type': type },
  });
  if (res.status !== 201)
    throw new Error(`manifest PUT ${reference}: HTTP ${res.status} ${await res.text()}`);
}
