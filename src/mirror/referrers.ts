/**
 * Carrying the supply chain: after an image is mirrored, everything at the source that refers to
 * its manifest follows it — cosign's `sha256-<hex>.sig|.att|.sbom` tags and OCI referrers
 * (signatures, attestations, SBOMs, found through the referrers API or the `sha256-<hex>` tag
 * schema) — each copied by the one copy engine with its digest preserved, so a signature stays
 * valid at the destination. Referrers of referrers follow too (a signed SBOM).
 *
 * At the destination a registry with the referrers API indexes a referrer when its manifest is
 * PUT; one without it (Debian's docker-registry 2.8) gets the `sha256-<hex>` index maintained, as
 * the distribution spec's fallback says. A re-run finds everything in place and copies nothing.
 * Only registry → registry copies carry referrers (docs/trust.md says why).
 */
import { type Digest, sha256 } from '../digest/index.js';
import { SkiffError, VerificationError } from '../errors/index.js';
import {
  type Descriptor,
  ImageManifestSchema,
  IndexSchema,
  MediaType,
  parseDocument,
} from '../manifest/index.js';
import { formatReference, type RegistryReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { headerValue } from '../registry/http.js';
import { putManifest } from '../registry/push.js';
import { referrers } from '../trust/signatures.js';
import type { MirrorResult } from './result.js';

/** cosign's attachments, each a tag named after the manifest it belongs to. */
const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;
/** More artifacts than this around one image is a registry gone wrong, not a supply chain. */
const MAX_ARTIFACTS = 256;

export interface CarryOptions {
  client: RegistryClient;
  destinationClient: RegistryClient;
  /** The copy engine, for one artifact (digest preserving, no policy, no conversion). */
  copy: (source: string, destination: string) => Promise<MirrorResult>;
  signal?: AbortSignal | undefined;
}

export interface Carried {
  /** Artifacts written to the destination by this run (already there: not counted). */
  copied: number;
  /** Artifacts found at the source. */
  found: number;
}

const hexOf = (digest: Digest) => digest.slice(digest.indexOf(':') + 1);
const location = (ref: RegistryReference) => ({ endpoint: ref.endpoint, repository: ref.repository });
const at = (ref: RegistryReference, name: { tag: string } | { digest: Digest }): string =>
  formatReference({
    transport: 'docker',
    registry: ref.registry,
    endpoint: ref.endpoint,
    repository: ref.repository,
    ...name,
  });

/** Carries every artifact that refers to `digest` (and to those artifacts) from `src` to `dst`. */
export async function carryReferrers(
  src: RegistryReference,
  dst: RegistryReference,
  digest: Digest,
  options: CarryOptions,
): Promise<Carried> {
  const carried: Carried = { copied: 0, found: 0 };
  const seen = new Set<Digest>([digest]);
  const subjects: Digest[] = [digest];
  const copyOne = async (what: string, from: string, to: string): Promise<Digest | undefined> => {
    if (++carried.found > MAX_ARTIFACTS)
      throw new VerificationError(`more than ${MAX_ARTIFACTS} artifacts refer to ${digest}`, {
        image: formatReference(src),
      });
    const result = await options.copy(from, to);
    if (result.error)
      throw new SkiffError(
        result.error.kind,
        result.error.exitCode,
        `carrying ${what}: ${result.error.message}`,
        { image: from, ...(result.error.context.digest ? { digest: result.error.context.digest } : {}) },
        result.error,
      );
    if (!result.upToDate) carried.copied++;
    return result.manifestDigest;
  };
  for (let subject = subjects.shift(); subject; subject = subjects.shift()) {
    const next: Array<Digest | undefined> = [];
    for (const suffix of COSIGN_SUFFIXES) {
      const tag = `sha256-${hexOf(subject)}.${suffix}`;
      const head = await options.client.headManifest(location(src), tag, ['pull'], options.signal);
      if (!head) continue;
      if (await holdsAllOf(src, dst, tag, head.digest, options)) carried.found++;
      else next.push(await copyOne(tag, at(src, { tag }), at(dst, { tag })));
    }
    const found = await referrers(options.client, src, subject, options.signal);
    for (const d of found)
      next.push(
        await copyOne(`referrer ${d.digest}`, at(src, { digest: d.digest }), at(dst, { digest: d.digest })),
      );
    if (found.length) await listAtDestination(dst, subject, found, options);
    for (const d of next)
      if (d && !seen.has(d)) {
        seen.add(d);
        subjects.push(d);
      }
  }
  return carried;
}

/** Whether anything at the source refers to `digest` (for a destination that cannot hold it). */
export async function hasReferrers(
  src: RegistryReference,
  digest: Digest,
  client: RegistryClient,
  signal?: AbortSignal,
): Promise<boolean> {
  for (const suffix of COSIGN_SUFFIXES)
    if (await client.headManifest(location(src), `sha256-${hexOf(digest)}.${suffix}`, ['pull'], signal))
      return true;
  return (await referrers(client, src, digest, signal)).length > 0;
}

/**
 * A cosign tag at the destination that already holds every layer of the source's (same payload,
 * same annotations: the same signature) is kept, not overwritten: signatures added there (mirror
 * --sign-by-sigstore-private-key) must survive a re-run.
 */
async function holdsAllOf(
  src: RegistryReference,
  dst: RegistryReference,
  tag: string,
  sourceDigest: Digest | undefined,
  options: CarryOptions,
): Promise<boolean> {
  const there = await options.destinationClient.headManifest(location(dst), tag, ['pull'], options.signal);
  if (!there || there.digest === sourceDigest) return false;
  const layers = async (client: RegistryClient, ref: RegistryReference) =>
    parseDocument(
      ImageManifestSchema,
      (await client.getManifest(location(ref), tag, options.signal)).bytes,
      `${tag} at ${formatReference(ref)}`,
    ).layers.map((l) => JSON.stringify([l.digest, l.annotations ?? {}]));
  const held = new Set(await layers(options.destinationClient, dst));
  return (await layers(options.client, src)).every((l) => held.has(l));
}

/**
 * Makes the destination list `found` as referrers of `subject`: nothing to do where the registry
 * has the referrers API (it indexed them as their manifests were PUT); otherwise the referrers tag
 * `sha256-<hex>` is an index of them, extended with what it lacks and written only if it changed.
 */
async function listAtDestination(
  dst: RegistryReference,
  subject: Digest,
  found: Descriptor[],
  options: CarryOptions,
): Promise<void> {
  const client = options.destinationClient;
  const res = await client.request(
    dst.endpoint,
    [{ repository: dst.repository, actions: ['pull'] }],
    {
      method: 'GET',
      path: `/v2/${dst.repository}/referrers/${subject}`,
      headers: { accept: MediaType.ociIndex },
    },
    options.signal,
  );
  await res.body.dump();
  const type = headerValue(res.headers, 'content-type') ?? '';
  if (res.status === 200 && type.startsWith(MediaType.ociIndex)) return;
  const tag = `sha256-${hexOf(subject)}`;
  const existing = await client.headManifest(location(dst), tag, ['pull'], options.signal);
  const listed: Descriptor[] = existing
    ? parseDocument(
        IndexSchema,
        (await client.getManifest(location(dst), tag, options.signal)).bytes,
        `referrers tag ${tag} at ${formatReference(dst)}`,
      ).manifests
    : [];
  const missing = found.filter((d) => !listed.some((l) => l.digest === d.digest));
  if (!missing.length) return;
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...listed, ...missing] }),
  );
  await putManifest(client, location(dst), tag, {
    bytes,
    mediaType: MediaType.ociIndex,
    digest: sha256(bytes),
  });
}
