/**
 * Sigstore bundles (application/vnd.dev.sigstore.bundle.v0.3+json) that refer to an image, as
 * cosign 3 attaches them: sigstore's own @sigstore/bundle validates the document and
 * @sigstore/verify checks signature, certificate chain, transparency-log entries and identity
 * against trust material built from the policy (its keys, its Fulcio CA, its Rekor keys) rather than
 * the public-good instance, offline. The signed content is a DSSE in-toto statement whose subject is
 * the manifest digest; its subject name is the identity signedIdentity judges.
 */
import crypto from 'node:crypto';
import { bundleFromJSON, isBundleWithDsseEnvelope } from '@sigstore/bundle';
import { type TrustMaterial, toSignedEntity, Verifier } from '@sigstore/verify';

type CertAuthority = TrustMaterial['certificateAuthorities'][number];
type TLogAuthority = TrustMaterial['tlogs'][number];

import { z } from 'zod';
import type { SignatureCheck, SignatureFailure } from './decide.js';
import type { FoundBundle } from './signatures.js';
import type { SigstoreMaterial } from './verify-sigstore.js';

const IN_TOTO = 'application/vnd.in-toto+json';

const StatementSchema = z.object({
  _type: z.string(),
  subject: z.array(z.object({ name: z.string(), digest: z.record(z.string(), z.string()) })).min(1),
  predicateType: z.string(),
});

const FOREVER = { start: new Date(0), end: new Date(8.64e15) };

export function verifyBundle(
  found: FoundBundle,
  material: SigstoreMaterial,
  manifestDigest: string,
): SignatureCheck {
  const fail = (
    failure: Extract<SignatureCheck, { verified: false }>['failure'],
    detail: string,
  ): SignatureCheck => ({
    origin: found.origin,
    verified: false,
    failure,
    detail,
  });
  let bundle: ReturnType<typeof bundleFromJSON>;
  try {
    bundle = bundleFromJSON(JSON.parse(found.bytes.toString('utf8')));
  } catch (error) {
    return fail('bad-payload', `not a sigstore bundle: ${(error as Error).message}`);
  }
  if (!isBundleWithDsseEnvelope(bundle))
    return fail('unsupported', 'a message-signature bundle names no image; only DSSE statements are read');
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== IN_TOTO) return fail('bad-payload', `payload type ${envelope.payloadType}`);
  const statement = StatementSchema.safeParse(safeJson(envelope.payload));
  if (!statement.success) return fail('bad-payload', 'the DSSE payload is not an in-toto statement');
  const subject =
    statement.data.subject.find((s) => `sha256:${s.digest.sha256}` === manifestDigest) ??
    statement.data.subject[0]!;
  const tlogThreshold = material.rekorKeys.length > 0 ? 1 : 0;
  const options = { tlogThreshold, ctlogThreshold: 0, timestampThreshold: tlogThreshold };
  const entity = toSignedEntity(bundle);
  const logNames = checkpointSigners(bundle);
  // Each trusted key in turn (a bundle's key hint is free text); one verifier for a Fulcio CA.
  const candidates: Array<{ label: string; key?: crypto.KeyObject }> = material.fulcio
    ? [{ label: `${material.fulcio.subjectEmail} (${material.fulcio.oidcIssuer})` }]
    : material.keys;
  const policy = material.fulcio
    ? {
        subjectAlternativeName: material.fulcio.subjectEmail,
        extensions: { issuer: material.fulcio.oidcIssuer },
      }
    : undefined;
  const errors: Array<{ code?: string; message: string }> = [];
  let signer: string | undefined;
  for (const candidate of candidates) {
    try {
      new Verifier(trustMaterial(material, candidate.key, logNames), options).verify(entity, policy);
      signer = candidate.label;
      break;
    } catch (error) {
      errors.push(error as { code?: string; message: string });
    }
  }
  if (!signer) {
    const message = [...new Set(errors.map((e) => e.message))].join(', ') || 'no trusted key';
    return fail(failureOf(errors[0]?.code, material.fulcio !== undefined), message);
  }
  return {
    origin: found.origin,
    verified: true,
    signer,
    claims: {
      dockerManifestDigest: `sha256:${subject.digest.sha256 ?? ''}`,
      // The statement names a repository and signs a digest: that is the identity it claims.
      dockerReference: `${repositoryOf(subject.name)}@sha256:${subject.digest.sha256 ?? ''}`,
      byDigest: true,
    },
  };
}

/** @sigstore/verify's error codes, as the failures the decision reports. */
function failureOf(code: string | undefined, keyless: boolean): SignatureFailure {
  if (code === 'UNTRUSTED_SIGNER_ERROR') return 'certificate-identity';
  if (code?.startsWith('TLOG_') || code === 'TIMESTAMP_ERROR') return 'rekor';
  if (code === 'CERTIFICATE_ERROR') return 'untrusted-certificate';
  if (code === 'NOT_IMPLEMENTED_ERROR') return 'unsupported';
  return keyless ? 'untrusted-certificate' : 'wrong-key';
}

/** `host:port/repo:tag@digest` → `host:port/repo`. */
function repositoryOf(name: string): string {
  const bare = name.split('@')[0]!;
  const colon = bare.lastIndexOf(':');
  return colon > bare.lastIndexOf('/') ? bare.slice(0, colon) : bare;
}

function safeJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The names that sign the checkpoints of the bundle's log entries (`— rekor.sigstore.dev …`).
 * @sigstore/verify accepts a checkpoint signature only from a log whose base URL contains the
 * signer's name; a policy names a Rekor key, not a log's URL (containers/image checks the key
 * alone), so each policy Rekor key stands for every name the bundle's checkpoints carry: the key
 * still has to verify them.
 */
function checkpointSigners(bundle: ReturnType<typeof bundleFromJSON>): string {
  const names = new Set<string>();
  for (const entry of bundle.verificationMaterial.tlogEntries)
    for (const match of (entry.inclusionProof?.checkpoint?.envelope ?? '').matchAll(/\u2014 (\S+) \S+\n/g))
      names.add(match[1]!);
  return [...names].join(' ') || 'policy';
}

/** The policy as sigstore trust material: one of its keys (whatever the hint), its Fulcio CA, its Rekor keys. */
function trustMaterial(
  material: SigstoreMaterial,
  key: crypto.KeyObject | undefined,
  logNames: string,
): TrustMaterial {
  const tlogs: TLogAuthority[] = material.rekorKeys.map((publicKey) => ({
    logID: crypto
      .createHash('sha256')
      .update(publicKey.export({ type: 'spki', format: 'der' }))
      .digest(),
    baseURL: logNames,
    publicKey,
    validFor: FOREVER,
  }));
  const certificateAuthorities: CertAuthority[] = material.fulcio
    ? material.fulcio.cas.map((ca) => ({ certChain: [ca], validFor: FOREVER }))
    : [];
  return {
    certificateAuthorities,
    timestampAuthorities: [],
    tlogs,
    ctlogs: [],
    publicKey: () => {
      if (!key) throw new Error('the policy names no public key');
      return { publicKey: key, validFor: () => true };
    },
  };
}
