/**
 * The trust decision, as src/strategy decides layers: facts in (the requirements that apply, the
 * signatures found and what their cryptography said), accept or reject out, no I/O. Every
 * requirement must accept (containers/image ANDs them); a signature requirement accepts when one
 * signature verifies, names the manifest being pulled and claims an acceptable identity.
 */
import { DEFAULT_SIGNED_IDENTITY, type DockerIdentity, identityMatches, parseIdentity } from './identity.js';
import type { PolicyRequirement } from './policy.js';

/** What a signature's payload claims (simple signing: `critical.image` and `critical.identity`). */
export interface SignatureClaims {
  dockerManifestDigest: string;
  dockerReference: string;
  /**
   * The claim binds a repository and a digest, never a tag (a sigstore bundle's in-toto subject):
   * identity rules then see the image as repository@digest too.
   */
  byDigest?: boolean;
}

/** Why a signature could not be used, as the user reads it. */
export type SignatureFailure =
  | 'wrong-key'
  | 'bad-signature'
  | 'bad-payload'
  | 'untrusted-certificate'
  | 'certificate-identity'
  | 'rekor'
  | 'unsupported';

/** One signature, checked against one requirement's keys or certificate authority. */
export type SignatureCheck =
  | {
      /** Where it was found: `lookaside signature-1`, `sha256-….sig layer 0`, `referrer sha256:…`. */
      origin: string;
      verified: true;
      /** The key (fingerprint or file) or certificate identity that verified it. */
      signer: string;
      claims: SignatureClaims;
    }
  | { origin: string; verified: false; failure: SignatureFailure; detail: string };

export interface RequirementFacts {
  requirement: PolicyRequirement;
  /** Signatures of the kind the requirement reads (empty: none found). */
  checks: SignatureCheck[];
}

export interface TrustFacts {
  /** The image's Docker identity; undefined for local transports, which have none. */
  image: DockerIdentity | undefined;
  /** The manifest the signatures must name. */
  manifestDigest: string;
  requirements: RequirementFacts[];
}

export interface Acceptance {
  type: PolicyRequirement['type'];
  /** For a signature requirement: the key or certificate identity, and the signed reference. */
  signer?: string;
  signedIdentity?: string;
  origin?: string;
}

export type TrustDecision =
  | { accepted: true; by: Acceptance[] }
  | { accepted: false; requirement: PolicyRequirement['type']; reasons: string[] };

export function decideTrust(facts: TrustFacts): TrustDecision {
  const by: Acceptance[] = [];
  for (const { requirement, checks } of facts.requirements) {
    if (requirement.type === 'insecureAcceptAnything') {
      by.push({ type: requirement.type });
      continue;
    }
    if (requirement.type === 'reject')
      return {
        accepted: false,
        requirement: 'reject',
        reasons: ['the policy rejects every image in this scope'],
      };
    const outcome = judgeSignatures(requirement, checks, facts);
    if (!outcome.accepted)
      return { accepted: false, requirement: requirement.type, reasons: outcome.reasons };
    by.push(outcome.by);
  }
  return { accepted: true, by };
}

function judgeSignatures(
  requirement: Extract<PolicyRequirement, { signedIdentity?: unknown }>,
  checks: SignatureCheck[],
  facts: TrustFacts,
): { accepted: true; by: Acceptance } | { accepted: false; reasons: string[] } {
  if (checks.length === 0) return { accepted: false, reasons: ['no signature'] };
  const reasons: string[] = [];
  for (const check of checks) {
    if (!check.verified) {
      reasons.push(`${check.origin}: ${check.failure.replaceAll('-', ' ')} (${check.detail})`);
      continue;
    }
    const { dockerManifestDigest, dockerReference } = check.claims;
    if (dockerManifestDigest !== facts.manifestDigest) {
      reasons.push(
        `${check.origin}: bad payload digest (signs ${dockerManifestDigest}, not ${facts.manifestDigest})`,
      );
      continue;
    }
    const signed = parseIdentity(dockerReference);
    const rule = requirement.signedIdentity ?? DEFAULT_SIGNED_IDENTITY;
    const image =
      facts.image && check.claims.byDigest
        ? { name: facts.image.name, digest: facts.manifestDigest }
        : facts.image;
    if (!image || !signed || !identityMatches(rule, image, signed)) {
      reasons.push(`${check.origin}: identity mismatch (signed for ${dockerReference}, ${rule.type})`);
      continue;
    }
    return {
      accepted: true,
      by: {
        type: requirement.type,
        signer: check.signer,
        signedIdentity: dockerReference,
        origin: check.origin,
      },
    };
  }
  return { accepted: false, reasons };
}
