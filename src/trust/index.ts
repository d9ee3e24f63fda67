/**
 * Trust (docs/trust.md): the one entry point a copy calls once the manifest digest is known and
 * before any layer is fetched. It reads the requirements that apply to the image from
 * containers-policy.json, finds the signatures those requirements read (registries.d says where),
 * verifies their cryptography, and lets the pure decide module accept or reject. A rejection is a
 * TrustPolicyError (exit 6) naming the image, the requirement and each signature's failure.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import type { Digest } from '../digest/index.js';
import { TrustPolicyError, UsageError } from '../errors/index.js';
import type { ImageReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { type Acceptance, decideTrust, type RequirementFacts, type SignatureCheck } from './decide.js';
import { formatIdentity, parseIdentity } from './identity.js';
import {
  loadPolicy,
  type Policy,
  type PolicyLocations,
  type PolicyRequirement,
  requirementsFor,
  type SignedByRequirement,
  type SigstoreRequirement,
} from './policy.js';
import { loadRegistriesD, type RegistriesD, signatureSources } from './registries-d.js';
import { cosignSignatures, lookasideSignatures, referrerBundles } from './signatures.js';
import type { LabelledKey, SigstoreMaterial } from './verify-sigstore.js';

export type { Policy } from './policy.js';

/** What the command line and the environment say about trust: read once per command. */
export interface TrustSettings {
  policy: Policy | undefined;
  registriesD: RegistriesD;
}

export async function loadTrustSettings(options: {
  policy?: string | undefined;
  registriesD?: string | undefined;
  /** Tests point the system locations elsewhere. */
  system?: { policyFile?: string; registriesD?: string };
}): Promise<TrustSettings> {
  const locations: PolicyLocations = { flag: options.policy, systemFile: options.system?.policyFile };
  return {
    policy: await loadPolicy(locations),
    registriesD: await loadRegistriesD({ flag: options.registriesD, systemDir: options.system?.registriesD }),
  };
}

/** What `--json` says about trust: no policy, or the file, the scope and who accepted the image. */
export type TrustReport =
  | { policy: 'none' }
  | { policy: string; transport: string; scope: string; acceptedBy: Acceptance[] };

export interface TrustInput {
  /** Undefined, or no policy file: everything is accepted, as before trust existed. */
  settings: TrustSettings | undefined;
  reference: ImageReference;
  /** The manifest the signatures must sign (for an index, the instance being copied). */
  manifestDigest: Digest;
  client: RegistryClient;
  signal?: AbortSignal | undefined;
}

export async function enforceTrustPolicy(input: TrustInput): Promise<TrustReport> {
  const policy = input.settings?.policy;
  if (!policy || !input.settings) return { policy: 'none' };
  const scoped = requirementsFor(policy, input.reference);
  const evidence = new Evidence(input, input.settings.registriesD);
  const requirements: RequirementFacts[] = [];
  for (const requirement of scoped.requirements)
    requirements.push({ requirement, checks: await checksFor(requirement, policy, evidence) });
  const ref = input.reference;
  const decision = decideTrust({
    image: ref.transport === 'docker' ? parseIdentity(dockerName(ref)) : undefined,
    manifestDigest: input.manifestDigest,
    requirements,
  });
  const where =
    scoped.scope === 'default'
      ? `${policy.file} (default requirements)`
      : `${policy.file} (${scoped.transport} scope ${JSON.stringify(scoped.scope)})`;
  if (!decision.accepted)
    throw new TrustPolicyError(
      `rejected by trust policy ${where}: ${decision.requirement}: ${decision.reasons.join('; ')}; no layer was fetched`,
    );
  return { policy: policy.file, transport: scoped.transport, scope: scoped.scope, acceptedBy: decision.by };
}

function dockerName(ref: Extract<ImageReference, { transport: 'docker' }>): string {
  const name = `${ref.registry}/${ref.repository}`;
  return formatIdentity({ name, tag: ref.digest ? undefined : ref.tag, digest: ref.digest });
}

async function checksFor(
  requirement: PolicyRequirement,
  policy: Policy,
  evidence: Evidence,
): Promise<SignatureCheck[]> {
  if (requirement.type === 'signedBy') {
    const keys = await gpgKeys(requirement, policy);
    const signatures = await evidence.lookaside();
    const { verifyGpgSignature } = await import('./verify-gpg.js');
    return Promise.all(signatures.map((s) => verifyGpgSignature(s.origin, s.bytes, keys)));
  }
  if (requirement.type === 'sigstoreSigned') {
    // Like openpgp and sigstore's verifier below, @sigstore/core loads only under a requirement that
    // needs it: a pull or mirror with no such policy does not pay for loading it.
    const sigstore = await import('./verify-sigstore.js');
    const material = await sigstoreMaterial(requirement, policy, sigstore);
    const cosign = (await evidence.cosign()).map((s) => sigstore.verifyCosignSignature(s, material));
    const found = await evidence.bundles();
    // sigstore's verifier, like openpgp, loads only when there is something for it to check: a
    // pull or mirror under no such requirement does not pay for loading it (0.1 s each).
    const verifyBundle = found.length > 0 ? (await import('./verify-bundle.js')).verifyBundle : undefined;
    const bundles = await Promise.all(found.map((b) => verifyBundle!(b, material, evidence.manifestDigest)));
    return [...cosign, ...bundles];
  }
  return [];
}

/** Signatures are fetched once per image, whichever requirements read them. */
class Evidence {
  private cache = new Map<string, Promise<unknown>>();
  readonly manifestDigest: Digest;
  constructor(
    private readonly input: TrustInput,
    private readonly registriesD: RegistriesD,
  ) {
    this.manifestDigest = input.manifestDigest;
  }

  private once<T>(key: string, load: () => Promise<T>): Promise<T> {
    if (!this.cache.has(key)) this.cache.set(key, load());
    return this.cache.get(key) as Promise<T>;
  }

  /** Local transports carry no signatures skiff reads: every signature requirement finds none. */
  private registry() {
    const ref = this.input.reference;
    return ref.transport === 'docker' ? ref : undefined;
  }

  lookaside() {
    return this.once('lookaside', async () => {
      const ref = this.registry();
      if (!ref) return [];
      const { lookaside } = signatureSources(this.registriesD, ref);
      return lookaside
        ? lookasideSignatures(this.input.client, lookaside, ref, this.manifestDigest, this.input.signal)
        : [];
    });
  }

  private attachments() {
    const ref = this.registry();
    return ref && signatureSources(this.registriesD, ref).useSigstoreAttachments ? ref : undefined;
  }

  cosign() {
    return this.once('cosign', async () => {
      const ref = this.attachments();
      return ref ? cosignSignatures(this.input.client, ref, this.manifestDigest, this.input.signal) : [];
    });
  }

  bundles() {
    return this.once('bundles', async () => {
      const ref = this.attachments();
      return ref ? referrerBundles(this.input.client, ref, this.manifestDigest, this.input.signal) : [];
    });
  }
}

async function readKeyFile(policy: Policy, file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (error) {
    throw new UsageError(
      `policy ${policy.file}: key file ${file}: ${(error as Error).message}`,
      { path: file },
      error,
    );
  }
}

async function gpgKeys(requirement: SignedByRequirement, policy: Policy) {
  const sources = requirement.keyData
    ? [{ label: 'keyData', bytes: requirement.keyData }]
    : await Promise.all(
        (requirement.keyPaths ?? [requirement.keyPath!]).map(async (file) => ({
          label: `key file ${file}`,
          bytes: await readKeyFile(policy, file),
        })),
      );
  const { readGpgKeys } = await import('./verify-gpg.js');
  const keys = await Promise.all(
    sources.map(({ label, bytes }) =>
      readGpgKeys(bytes).catch((error: unknown) => {
        throw new UsageError(
          `policy ${policy.file}: signedBy ${label} is not a GPG key: ${(error as Error).message}`,
        );
      }),
    ),
  );
  return keys.flat();
}

async function sigstoreMaterial(
  r: SigstoreRequirement,
  policy: Policy,
  { keyFingerprint, parseCertificates }: typeof import('./verify-sigstore.js'),
): Promise<SigstoreMaterial> {
  const fromFiles = (files: string[]) =>
    Promise.all(files.map(async (file) => ({ label: file, bytes: await readKeyFile(policy, file) })));
  const inline = (datas: Buffer[]) => datas.map((bytes) => ({ label: 'keyData', bytes }));
  const keySources = r.keyPath
    ? await fromFiles([r.keyPath])
    : r.keyPaths
      ? await fromFiles(r.keyPaths)
      : inline(r.keyData ? [r.keyData] : (r.keyDatas ?? []));
  const rekorSources = r.rekorPublicKeyPath
    ? await fromFiles([r.rekorPublicKeyPath])
    : r.rekorPublicKeyPaths
      ? await fromFiles(r.rekorPublicKeyPaths)
      : inline(r.rekorPublicKeyData ? [r.rekorPublicKeyData] : (r.rekorPublicKeyDatas ?? []));
  const toKey = (source: { label: string; bytes: Buffer }): LabelledKey => {
    try {
      const key = crypto.createPublicKey(source.bytes);
      return { label: source.label === 'keyData' ? `keyData ${keyFingerprint(key)}` : source.label, key };
    } catch (error) {
      throw new UsageError(
        `policy ${policy.file}: ${source.label} is not a public key: ${(error as Error).message}`,
      );
    }
  };
  const fulcio = r.fulcio && {
    cas: parseCertificates(
      (r.fulcio.caData ?? (await readKeyFile(policy, r.fulcio.caPath!))).toString('utf8'),
    ),
    oidcIssuer: r.fulcio.oidcIssuer,
    subjectEmail: r.fulcio.subjectEmail,
  };
  if (fulcio && fulcio.cas.length === 0)
    throw new UsageError(`policy ${policy.file}: the fulcio CA holds no PEM certificate`);
  return { keys: keySources.map(toKey), fulcio, rekorKeys: rekorSources.map((s) => toKey(s).key) };
}
