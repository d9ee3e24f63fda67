/**
 * containers-policy.json(5): where the file is, its schema (validated once, here), and which
 * requirements apply to an image (transport → most specific scope → the transport's "" → default),
 * the same rules as containers/image's signature/policy_config.go.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';
import type { ImageReference } from '../reference/index.js';

const SignedIdentitySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('matchExact') }),
  z.strictObject({ type: z.literal('matchRepoDigestOrExact') }),
  z.strictObject({ type: z.literal('matchRepository') }),
  z.strictObject({ type: z.literal('exactReference'), dockerReference: z.string().min(1) }),
  z.strictObject({ type: z.literal('exactRepository'), dockerRepository: z.string().min(1) }),
  z.strictObject({
    type: z.literal('remapIdentity'),
    prefix: z.string().min(1),
    signedPrefix: z.string().min(1),
  }),
]);
export type SignedIdentity = z.infer<typeof SignedIdentitySchema>;

/** `keyData`, `caData`, … are base64 in policy.json (Go's []byte encoding). */
const Base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/\s]*={0,2}\s*$/, 'not base64')
  .transform((s) => Buffer.from(s, 'base64'));

const FulcioSchema = z
  .strictObject({
    caPath: z.string().min(1).optional(),
    caData: Base64.optional(),
    oidcIssuer: z.string().min(1),
    subjectEmail: z.string().min(1),
  })
  .refine((f) => (f.caPath === undefined) !== (f.caData === undefined), 'exactly one of caPath and caData');

const SignedBySchema = z
  .strictObject({
    type: z.literal('signedBy'),
    keyType: z.string(),
    keyPath: z.string().min(1).optional(),
    keyPaths: z.array(z.string().min(1)).min(1).optional(),
    keyData: Base64.optional(),
    signedIdentity: SignedIdentitySchema.optional(),
  })
  .refine((r) => r.keyType === 'GPGKeys', {
    message: 'keyType must be "GPGKeys" (the only key type containers/image implements)',
    path: ['keyType'],
  })
  .refine(
    (r) => countDefined(r.keyPath, r.keyPaths, r.keyData) === 1,
    'exactly one of keyPath, keyPaths, keyData',
  );

const SigstoreSignedSchema = z
  .strictObject({
    type: z.literal('sigstoreSigned'),
    keyPath: z.string().min(1).optional(),
    keyPaths: z.array(z.string().min(1)).min(1).optional(),
    keyData: Base64.optional(),
    keyDatas: z.array(Base64).min(1).optional(),
    fulcio: FulcioSchema.optional(),
    rekorPublicKeyPath: z.string().min(1).optional(),
    rekorPublicKeyPaths: z.array(z.string().min(1)).min(1).optional(),
    rekorPublicKeyData: Base64.optional(),
    rekorPublicKeyDatas: z.array(Base64).min(1).optional(),
    signedIdentity: SignedIdentitySchema.optional(),
  })
  .refine(
    (r) => countDefined(r.keyPath, r.keyPaths, r.keyData, r.keyDatas, r.fulcio) === 1,
    'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio',
  )
  .refine(
    (r) =>
      countDefined(
        r.rekorPublicKeyPath,
        r.rekorPublicKeyPaths,
        r.rekorPublicKeyData,
        r.rekorPublicKeyDatas,
      ) <= 1,
    'at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData, rekorPublicKeyDatas',
  )
  .refine(
    (r) =>
      !r.fulcio ||
      countDefined(
        r.rekorPublicKeyPath,
        r.rekorPublicKeyPaths,
        r.rekorPublicKeyData,
        r.rekorPublicKeyDatas,
      ) === 1,
    'fulcio needs a Rekor public key (rekorPublicKeyPath or rekorPublicKeyData)',
  );

const RequirementSchema = z.union([
  z.strictObject({ type: z.literal('insecureAcceptAnything') }),
  z.strictObject({ type: z.literal('reject') }),
  SignedBySchema,
  SigstoreSignedSchema,
]);
export type PolicyRequirement = z.infer<typeof RequirementSchema>;
export type SignedByRequirement = z.infer<typeof SignedBySchema>;
export type SigstoreRequirement = z.infer<typeof SigstoreSignedSchema>;

const RequirementsSchema = z.array(RequirementSchema).min(1, 'a requirement list must not be empty');

const PolicySchema = z.strictObject({
  default: RequirementsSchema,
  transports: z.record(z.string(), z.record(z.string(), RequirementsSchema)).optional(),
});

export interface Policy {
  /** The file it came from: named in every message and in the report. */
  file: string;
  default: PolicyRequirement[];
  transports: Record<string, Record<string, PolicyRequirement[]>>;
}

/** The requirements that apply to one image, and the scope that selected them. */
export interface ScopedRequirements {
  transport: string;
  /** The scope key that matched (`""` is the transport's default), or `default` for the top level. */
  scope: string;
  requirements: PolicyRequirement[];
}

function countDefined(...values: unknown[]): number {
  return values.filter((v) => v !== undefined).length;
}

export interface PolicyLocations {
  /** `--policy FILE`: the only file read when given. */
  flag?: string | undefined;
  home?: string | undefined;
  /** Where the system file lives; tests point it elsewhere. */
  systemFile?: string | undefined;
}

export const SYSTEM_POLICY = '/etc/containers/policy.json';

/**
 * The policy skiff obeys: `--policy`, else `$HOME/.config/containers/policy.json`, else
 * `/etc/containers/policy.json`; undefined when none exists (skiff then behaves as it always did).
 */
export async function loadPolicy(locations: PolicyLocations = {}): Promise<Policy | undefined> {
  if (locations.flag) return readPolicyFile(path.resolve(locations.flag));
  const home = locations.home ?? process.env.HOME ?? os.homedir();
  for (const file of [
    path.join(home, '.config', 'containers', 'policy.json'),
    locations.systemFile ?? SYSTEM_POLICY,
  ]) {
    const policy = await readPolicyFile(file).catch((error: unknown) => {
      if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return undefined;
      throw error;
    });
    if (policy) return policy;
  }
  return undefined;
}

export async function readPolicyFile(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`policy ${file}: ${(error as Error).message}`, { path: file }, error);
  }
  return parsePolicy(text, file);
}

export function parsePolicy(text: string, file: string): Policy {
  const fail = (why: string): never => {
    throw new UsageError(`policy ${file} is invalid: ${why}`, { path: file });
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail((error as Error).message);
  }
  const parsed = PolicySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    fail(`${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  const policy = parsed.data!;
  for (const [transport, scopes] of Object.entries(policy.transports ?? {})) {
    for (const scope of Object.keys(scopes)) {
      const why = scopeProblem(transport, scope);
      if (why) fail(`transports.${transport}: scope "${scope}" ${why}`);
    }
  }
  return { file, default: policy.default, transports: policy.transports ?? {} };
}

/**
 * Why containers/image would refuse a scope (undefined when it is fine). It checks little for
 * docker: a scope that can never match (`docker.io/busybox`) is accepted there, so here too.
 */
function scopeProblem(transport: string, scope: string): string | undefined {
  if (scope === '') return undefined;
  if (transport === 'docker-archive') return 'is not allowed: docker-archive takes only the "" scope';
  if (transport !== 'docker') return path.isAbsolute(scope) ? undefined : 'must be an absolute path';
  if (scope.startsWith('*.') && !/^\*\.[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(scope))
    return 'is not a valid wildcard domain';
  return undefined;
}

/** The policy identity of an image and its namespaces, most specific first (c/image's scopes). */
export function policyScopes(reference: ImageReference): {
  transport: string;
  identity: string;
  namespaces: string[];
} {
  switch (reference.transport) {
    case 'docker': {
      const name = `${reference.registry}/${reference.repository}`;
      const identity = reference.digest
        ? `${name}@${reference.digest}`
        : `${name}:${reference.tag ?? 'latest'}`;
      const namespaces = [name];
      for (let cut = name.lastIndexOf('/'); cut > 0; cut = name.lastIndexOf('/', cut - 1))
        namespaces.push(name.slice(0, cut));
      // Wildcards are of the host alone: the port is dropped, as containers/image does.
      let host = reference.registry.replace(/:\d+$/, '');
      for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.')) {
        host = host.slice(dot + 1);
        namespaces.push(`*.${host}`);
      }
      return { transport: 'docker', identity, namespaces };
    }
    case 'oci': {
      const dir = path.resolve(reference.dir);
      return {
        transport: 'oci',
        identity: `${dir}:${reference.tag ?? ''}`,
        namespaces: parentDirs(dir, true),
      };
    }
    case 'dir': {
      const dir = path.resolve(reference.dir);
      return { transport: 'dir', identity: dir, namespaces: parentDirs(dir, false) };
    }
    case 'docker-archive': {
      const file = path.resolve(reference.file);
      return { transport: 'docker-archive', identity: file, namespaces: parentDirs(file, false) };
    }
    case 'store':
      // skiff's own store, scoped as containers/image scopes its store: by image name alone.
      return { transport: 'containers-storage', identity: reference.image, namespaces: [] };
  }
}

function parentDirs(dir: string, includeSelf: boolean): string[] {
  const out = includeSelf ? [dir] : [];
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) out.push(d);
  return out;
}

/** transport → identity → namespaces → the transport's "" → default. */
export function requirementsFor(policy: Policy, reference: ImageReference): ScopedRequirements {
  const { transport, identity, namespaces } = policyScopes(reference);
  const scopes = policy.transports[transport];
  if (scopes) {
    for (const scope of [identity, ...namespaces, '']) {
      const requirements = scopes[scope];
      if (requirements) return { transport, scope, requirements };
    }
  }
  return { transport, scope: 'default', requirements: policy.default };
}
