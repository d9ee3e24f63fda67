/**
 * cosign signatures (`sigstoreSigned`): the signature over the simple-signing payload, checked with
 * node:crypto against the policy's public keys, or (keyless) against a Fulcio leaf certificate that
 * chains to the policy's CA and names the policy's OIDC issuer and e-mail; with a Rekor key, the
 * Rekor SET (a signed promise of a log entry for exactly this signature) must verify too, and its
 * time is when the short-lived certificate must have been valid. Offline: no log is consulted.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { json as sigstoreJson, X509Certificate } from '@sigstore/core';
import { z } from 'zod';
import type { SignatureCheck } from './decide.js';
import { COSIGN_TYPE, parsePayload } from './payload.js';

export interface LabelledKey {
  /** How the report names it: the key file, or `keyData` with its SPKI fingerprint. */
  label: string;
  key: KeyObject;
}

export interface SigstoreMaterial {
  keys: LabelledKey[];
  fulcio?: { cas: X509Certificate[]; oidcIssuer: string; subjectEmail: string } | undefined;
  rekorKeys: KeyObject[];
}

/** A cosign signature as the `.sig` tag carries it (one layer with its annotations). */
export interface CosignSignature {
  origin: string;
  payload: Buffer;
  /** Base64, `dev.cosignproject.cosign/signature`. */
  signature: string;
  certificate?: string | undefined;
  chain?: string | undefined;
  /** The Rekor bundle, `dev.sigstore.cosign/bundle`. */
  bundle?: string | undefined;
}

type Failure = Extract<SignatureCheck, { verified: false }>;

export function verifyCosignSignature(sig: CosignSignature, material: SigstoreMaterial): SignatureCheck {
  const fail = (failure: Failure['failure'], detail: string): Failure => ({
    origin: sig.origin,
    verified: false,
    failure,
    detail,
  });
  const signature = Buffer.from(sig.signature, 'base64');
  let signer: string;
  let signingKey: KeyObject;
  let leaf: X509Certificate | undefined;
  if (material.fulcio) {
    if (!sig.certificate) return fail('untrusted-certificate', 'no Fulcio certificate beside the signature');
    try {
      leaf = X509Certificate.parse(sig.certificate);
      signingKey = crypto.createPublicKey({ key: leaf.publicKey, format: 'der', type: 'spki' });
    } catch (error) {
      return fail('untrusted-certificate', `the certificate cannot be read: ${(error as Error).message}`);
    }
    if (!verifyWith(signingKey, sig.payload, signature))
      return fail('bad-signature', 'the signature does not verify with its certificate');
    const who = certificateIdentity(leaf);
    if (who.email !== material.fulcio.subjectEmail || who.issuer !== material.fulcio.oidcIssuer)
      return fail(
        'certificate-identity',
        `certificate for ${who.email ?? 'no e-mail'} from ${who.issuer ?? 'no issuer'}, the policy wants ${material.fulcio.subjectEmail} from ${material.fulcio.oidcIssuer}`,
      );
    signer = `${who.email} (${who.issuer})`;
  } else {
    const match = material.keys.find((k) => verifyWith(k.key, sig.payload, signature));
    if (!match) return fail('wrong-key', `verifies with none of the ${material.keys.length} trusted key(s)`);
    signer = match.label;
    signingKey = match.key;
  }
  if (material.rekorKeys.length > 0) {
    const rekor = checkRekorBundle(sig, signature, signingKey, leaf, material.rekorKeys);
    if (typeof rekor === 'string') return fail('rekor', rekor);
    if (leaf && material.fulcio) {
      const chained = chainsTo(leaf, parseChain(sig.chain), material.fulcio.cas, rekor.integratedTime);
      if (chained !== true) return fail('untrusted-certificate', chained);
    }
  } else if (leaf) {
    return fail('rekor', 'a Fulcio certificate needs a Rekor public key in the policy');
  }
  const parsed = parsePayload(sig.payload, COSIGN_TYPE);
  if ('problem' in parsed) return fail('bad-payload', parsed.problem);
  return { origin: sig.origin, verified: true, signer, claims: parsed.claims };
}

/** cosign's verifiers hash with SHA-256 (Ed25519 signs the message itself). */
export function verifyWith(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    const algorithm = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return crypto.verify(algorithm, data, key, signature);
  } catch {
    return false;
  }
}

/** The SPKI SHA-256 fingerprint: how a key given inline is named in reports. */
export function keyFingerprint(key: KeyObject): string {
  return `sha256:${crypto
    .createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

const FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';

/** The certificate's e-mail SAN and OIDC issuer (Fulcio's extension; the DER form first, then the old raw one). */
export function certificateIdentity(cert: X509Certificate): { email?: string; issuer?: string } {
  const v2 = cert.extension(FULCIO_ISSUER_V2)?.value;
  const v1 = cert.extension(FULCIO_ISSUER_V1)?.value;
  const issuer = v2 ? derUtf8String(v2) : v1?.toString('utf8');
  const email = cert.extSubjectAltName?.rfc822Name;
  return { ...(email ? { email } : {}), ...(issuer ? { issuer } : {}) };
}

function derUtf8String(der: Buffer): string | undefined {
  if (der[0] !== 0x0c || der.length < 2) return undefined;
  let length = der[1]!;
  let offset = 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = der.subarray(2, 2 + n).reduce((acc, b) => acc * 256 + b, 0);
    offset = 2 + n;
  }
  return der.subarray(offset, offset + length).toString('utf8');
}

function parseChain(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => X509Certificate.parse(b));
}

/** Reads every certificate of a PEM bundle (a policy's caPath/caData). */
export function parseCertificates(pem: string): X509Certificate[] {
  return parseChain(pem);
}

/** leaf → intermediates → one of the trusted CAs, each valid at `when`; true, or why not. */
function chainsTo(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  roots: X509Certificate[],
  when: Date,
): true | string {
  if (!leaf.validForDate(when))
    return `the certificate was not valid at the Rekor time ${when.toISOString()}`;
  let current = leaf;
  for (let depth = 0; depth < 8; depth++) {
    const root = roots.find((r) => r.validForDate(when) && safeVerify(current, r));
    if (root) return true;
    const next = intermediates.find((c) => c.isCA && c.validForDate(when) && safeVerify(current, c));
    if (!next) break;
    current = next;
  }
  return 'the certificate does not chain to the policy CA';
}

function safeVerify(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer);
  } catch {
    return false;
  }
}

const RekorBundleSchema = z.object({
  SignedEntryTimestamp: z.string().min(1),
  Payload: z.object({
    body: z.string().min(1),
    integratedTime: z.number().int(),
    logIndex: z.number().int(),
    logID: z.string().min(1),
  }),
});

const HashedRekordSchema = z.object({
  kind: z.literal('hashedrekord'),
  spec: z.object({
    data: z.object({ hash: z.object({ algorithm: z.literal('sha256'), value: z.string() }) }),
    signature: z.object({ content: z.string(), publicKey: z.object({ content: z.string() }) }),
  }),
});

/**
 * The Rekor SET signs the entry (body, time, index, log) in canonical JSON; the entry must be for
 * this very signature, payload hash and key or certificate. Returns the entry's time, or why not.
 */
function checkRekorBundle(
  sig: CosignSignature,
  signature: Buffer,
  signingKey: KeyObject,
  leaf: X509Certificate | undefined,
  rekorKeys: KeyObject[],
): { integratedTime: Date } | string {
  if (!sig.bundle) return 'no Rekor bundle beside the signature';
  let bundle: z.infer<typeof RekorBundleSchema>;
  try {
    bundle = RekorBundleSchema.parse(JSON.parse(sig.bundle));
  } catch {
    return 'the Rekor bundle is malformed';
  }
  const { body, integratedTime, logIndex, logID } = bundle.Payload;
  const signed = Buffer.from(sigstoreJson.canonicalize({ body, integratedTime, logID, logIndex }));
  const set = Buffer.from(bundle.SignedEntryTimestamp, 'base64');
  if (!rekorKeys.some((key) => verifyWith(key, signed, set)))
    return 'the Rekor SET verifies with no trusted Rekor key';
  let entry: z.infer<typeof HashedRekordSchema>;
  try {
    entry = HashedRekordSchema.parse(JSON.parse(Buffer.from(body, 'base64').toString('utf8')));
  } catch {
    return 'the Rekor entry is not a hashedrekord';
  }
  const payloadHash = crypto.createHash('sha256').update(sig.payload).digest('hex');
  if (entry.spec.data.hash.value !== payloadHash) return 'the Rekor entry is for another payload';
  if (!Buffer.from(entry.spec.signature.content, 'base64').equals(signature))
    return 'the Rekor entry is for another signature';
  const logged = Buffer.from(entry.spec.signature.publicKey.content, 'base64').toString('utf8');
  if (!sameSigner(logged, signingKey, leaf)) return 'the Rekor entry is for another key or certificate';
  return { integratedTime: new Date(integratedTime * 1000) };
}

function sameSigner(loggedPem: string, key: KeyObject, leaf: X509Certificate | undefined): boolean {
  try {
    if (leaf) return X509Certificate.parse(loggedPem).equals(leaf);
    const logged = crypto.createPublicKey(loggedPem).export({ type: 'spki', format: 'der' });
    return logged.equals(key.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}
