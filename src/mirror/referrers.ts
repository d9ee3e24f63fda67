/**
 * Carrying the supply chain: after an image is mirrored, everything at the source that refers to
 * its manifest follows it — cosign's `sha256-<hex>.sig|.att|.sbom` tags and OCI referrers
 * (signatures, attestations, SBOMs) — each copied by the one copy engine with its digest preserved,
 * so a signature stays valid at the destination. Referrers of referrers follow too (a signed SBOM),
 * and with `--all` those of each platform's manifest as well as the index's.
 *
 * Both ends are a registry repository or an OCI image layout (`ReferrerEnd`). In a registry,
 * referrers are found through the referrers API, else the `sha256-<hex>` tag schema; a destination
 * with the API indexes a referrer when its manifest is PUT, one without it (Debian's
 * docker-registry 2.8) gets the `sha256-<hex>` index maintained, as the distribution spec's fallback
 * says. In a layout (image-spec 1.1, as `oras attach --oci-layout` writes it) a referrer is a
 * manifest blob listed in index.json untagged, with its `artifactType`, found by its `subject`;
 * cosign tags are index.json entries named `sha256-<hex>.sig`. A re-run copies nothing.
 */
import { type Digest, sha256 } from '../digest/index.js';
import { SkiffError, VerificationError } from '../errors/index.js';
import {
  type Descriptor,
  ImageManifestSchema,
  IndexSchema,
  isIndexMediaType,
  MediaType,
  parseDocument,
} from '../manifest/index.js';
import {
  formatReference,
  type ImageReference,
  type OciLayoutReference,
  type RegistryReference,
} from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { headerValue } from '../registry/http.js';
import { putManifest } from '../registry/push.js';
import { type ImageDestination, type ImageSource, openDestination, openSource } from '../transport/index.js';
import {
  OciLayoutSource,
  REF_NAME_ANNOTATION,
  readLayoutIndex,
  readLayoutManifest,
} from '../transport/oci-layout.js';
import { referrers } from '../trust/signatures.js';
import type { ReferrerLookups } from './referrer-lookups.js';
import type { MirrorResult } from './result.js';

/** cosign's attachments, each a tag named after the manifest it belongs to. */
const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;
/** More artifacts than this around one image is a registry gone wrong, not a supply chain. */
const MAX_ARTIFACTS = 256;

export interface CarryOptions {
  client: RegistryClient;
  destinationClient: RegistryClient;
  /** Registry uploads in PATCH chunks of this many bytes (mirror --chunk-size); 0: one PUT. */
  chunkSize?: number | undefined;
  /** The copy engine, for one artifact (digest preserving, no policy, no conversion). */
  copy: (source: ImageSource, destination: ImageDestination) => Promise<MirrorResult>;
  signal?: AbortSignal | undefined;
  /**
   * The run's lookups, for a source end only: its tags are listed once per run, so a tag missing
   * from the list is absent without a HEAD. A destination's tags change as the run writes them.
   */
  lookups?: ReferrerLookups | undefined;
}

export interface Carried {
  /** Artifacts written to the destination by this run (already there: not counted). */
  copied: number;
  /** Artifacts found at the source. */
  found: number;
}

/** A manifest by tag or by digest at one end. */
type Which = { tag: string } | { digest: Digest };

/** One end of a carry: what `carryReferrers` needs to find, read and write artifacts there. */
export interface ReferrerEnd {
  /** What a tag names now (its digest when known), or undefined when the tag is absent. */
  tagged(tag: string): Promise<{ digest: Digest | undefined } | undefined>;
  /** A manifest's bytes (digest-checked where read by digest). */
  manifest(which: Which): Promise<Buffer>;
  /** What refers to `subject` here. */
  referrers(subject: Digest): Promise<Descriptor[]>;
  source(which: Which): Promise<ImageSource>;
  destination(which: Which): Promise<ImageDestination>;
  /** Makes the destination list `found` as referrers of `subject` (after they were copied). */
  list(subject: Digest, found: Descriptor[]): Promise<void>;
  /**
   * True when this end knows, without reading a manifest, that nothing here refers to a manifest
   * outside `known` (so an index's manifests need not be read to look for their referrers).
   */
  noReferrersBeyond?(known: ReadonlySet<Digest>): Promise<boolean>;
}

const hexOf = (digest: Digest) => digest.slice(digest.indexOf(':') + 1);
const nameOf = (which: Which) => ('tag' in which ? which.tag : which.digest);

/** The end a reference names, or undefined for transports that hold one image (dir:, archives, store:). */
export function referrerEnd(
  ref: ImageReference,
  client: RegistryClient,
  options: Pick<CarryOptions, 'chunkSize' | 'signal' | 'lookups'> = {},
): ReferrerEnd | undefined {
  if (ref.transport === 'docker') return registryEnd(ref, client, options);
  if (ref.transport === 'oci') return layoutEnd(ref);
  return undefined;
}

function registryEnd(
  ref: RegistryReference,
  client: RegistryClient,
  options: Pick<CarryOptions, 'chunkSize' | 'signal' | 'lookups'>,
): ReferrerEnd {
  const location = { endpoint: ref.endpoint, repository: ref.repository };
  const { lookups } = options;
  const at = (which: Which): RegistryReference => {
    const { tag: _tag, digest: _digest, ...repository } = ref;
    return { ...repository, ...which };
  };
  return {
    tagged: async (tag) => {
      const listed = await lookups?.tags(client, location);
      if (listed && !listed.has(tag)) return undefined;
      return client.headManifest(location, tag, ['pull'], options.signal);
    },
    manifest: async (which) => {
      const bytes = (await client.getManifest(location, nameOf(which), options.signal)).bytes;
      if ('digest' in which && sha256(bytes) !== which.digest)
        throw new VerificationError(`manifest ${which.digest} does not match its digest`, {
          digest: which.digest,
        });
      return bytes;
    },
    referrers: (subject) =>
      lookups
        ? lookups.referrers(client, ref, subject, options.signal)
        : referrers(client, ref, subject, options.signal),
    source: (which) => openSource(at(which), client),
    destination: (which) => openDestination(at(which), client, { chunkSize: options.chunkSize }),
    list: (subject, found) => listInRegistry(client, ref, subject, found, options.signal),
    noReferrersBeyond: async (known) => (lookups ? lookups.noReferrersBeyond(client, ref, known) : false),
  };
}

function layoutEnd(ref: OciLayoutReference): ReferrerEnd {
  const dir = ref.dir;
  const at = (which: Which): [OciLayoutReference, { digest?: Digest }] =>
    'tag' in which ? [{ transport: 'oci', dir, tag: which.tag }, {}] : [{ transport: 'oci', dir }, which];
  const entries = async () => readLayoutIndex(dir).catch(() => [] as Descriptor[]);
  return {
    tagged: async (tag) => (await entries()).find((e) => e.annotations?.[REF_NAME_ANNOTATION] === tag),
    manifest: async (which) => {
      const digest = 'digest' in which ? which.digest : (await layoutEnd(ref).tagged(which.tag))?.digest;
      if (!digest) throw new VerificationError(`no manifest tagged ${nameOf(which)} in OCI layout ${dir}`);
      return readLayoutManifest(dir, digest);
    },
    referrers: (subject) => layoutReferrers(dir, subject),
    source: async (which) => new OciLayoutSource(...at(which)),
    destination: async (which) => new (await import('../transport/oci-dest.js')).OciDestination(...at(which)),
    // A referrer written untagged into index.json (OciDestination) is listed by that entry.
    list: async () => {},
  };
}

/**
 * What refers to `subject` in a layout: every index.json entry whose manifest names it as its
 * `subject` (as oras writes them), and the entries of a referrers tag schema index `sha256-<hex>`
 * (as regclient writes them), each with its `artifactType`.
 */
async function layoutReferrers(dir: string, subject: Digest): Promise<Descriptor[]> {
  const found = new Map<Digest, Descriptor>();
  for (const entry of await readLayoutIndex(dir).catch(() => [] as Descriptor[])) {
    if (entry.annotations?.[REF_NAME_ANNOTATION] === `sha256-${hexOf(subject)}`) {
      const listed = parseDocument(IndexSchema, await readLayoutManifest(dir, entry.digest), entry.digest);
      for (const d of listed.manifests) found.set(d.digest, d);
      continue;
    }
    if (found.has(entry.digest)) continue;
    const doc = referrerFacts(await readLayoutManifest(dir, entry.digest));
    if (doc.subject !== subject) continue;
    const artifactType = entry.artifactType ?? doc.artifactType;
    found.set(entry.digest, {
      mediaType: entry.mediaType,
      digest: entry.digest,
      size: entry.size,
      ...(artifactType ? { artifactType } : {}),
    });
  }
  return [...found.values()];
}

/** A manifest's `subject` digest and its artifact type (its own, else its config's media type). */
function referrerFacts(bytes: Buffer): { subject?: string; artifactType?: string } {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as {
      subject?: { digest?: unknown };
      artifactType?: unknown;
      config?: { mediaType?: unknown };
    };
    const subject = typeof doc.subject?.digest === 'string' ? doc.subject.digest : undefined;
    const type = typeof doc.artifactType === 'string' ? doc.artifactType : doc.config?.mediaType;
    return { ...(subject ? { subject } : {}), ...(typeof type === 'string' ? { artifactType: type } : {}) };
  } catch {
    return {};
  }
}

/**
 * Carries every artifact that refers to the written manifest `digest` (and, when it is an index, to
 * each of its manifests; and to those artifacts in turn) from `src` to `dst`.
 *
 * An index's own referrers are carried first; its manifests are looked at only if the source may
 * hold referrers of something not yet seen (`noReferrersBeyond`): a re-run of a multi-arch image
 * nobody signed per platform reads no manifest at either end (issue 15).
 */
export async function carryReferrers(
  src: ReferrerEnd,
  dst: ReferrerEnd,
  written: Subject,
  options: Pick<CarryOptions, 'copy' | 'lookups'>,
): Promise<Carried> {
  const carried: Carried = { copied: 0, found: 0 };
  const subjects: Digest[] = [written.digest];
  const seen = new Set<Digest>(subjects);
  const copyOne = async (what: string, which: Which): Promise<Digest | undefined> => {
    if (++carried.found > MAX_ARTIFACTS)
      throw new VerificationError(`more than ${MAX_ARTIFACTS} artifacts refer to ${written.digest}`);
    const result = await options.copy(await src.source(which), await dst.destination(which));
    if (result.error)
      throw new SkiffError(
        result.error.kind,
        result.error.exitCode,
        `carrying ${what}: ${result.error.message}`,
        { ...(result.error.context.digest ? { digest: result.error.context.digest } : {}) },
        result.error,
      );
    if (!result.upToDate) carried.copied++;
    return result.manifestDigest;
  };
  const walk = async () => {
    for (let subject = subjects.shift(); subject; subject = subjects.shift()) {
      const next: Array<Digest | undefined> = [];
      for (const suffix of COSIGN_SUFFIXES) {
        const tag = `sha256-${hexOf(subject)}.${suffix}`;
        const there = await src.tagged(tag);
        if (!there) continue;
        if (await holdsAllOf(src, dst, tag, there.digest)) carried.found++;
        else next.push(await copyOne(tag, { tag }));
      }
      const found = await src.referrers(subject);
      for (const d of found) next.push(await copyOne(`referrer ${d.digest}`, { digest: d.digest }));
      if (found.length) await dst.list(subject, found);
      for (const d of next)
        if (d && !seen.has(d)) {
          seen.add(d);
          subjects.push(d);
        }
    }
  };
  await walk();
  if (!isIndex(written) || (await src.noReferrersBeyond?.(seen))) return carried;
  for (const child of await childrenOf(dst, written, options.lookups))
    if (!seen.has(child)) {
      seen.add(child);
      subjects.push(child);
    }
  await walk();
  return carried;
}

/** A manifest the copy wrote, and what it knows of it. */
export interface Subject {
  digest: Digest;
  mediaType?: string | undefined;
  /** An index's manifests, when the copy that wrote it read them (none read on a re-run). */
  children?: readonly Digest[] | undefined;
}

const isIndex = (written: Subject) =>
  Boolean(written.mediaType && isIndexMediaType(written.mediaType.split(';')[0]!.trim()));

/**
 * The manifests of a written index (`mirror --all`): skopeo and cosign sign each platform's
 * manifest as well as (or instead of) the index, so their referrers follow too. Known from the copy
 * that wrote the index, else from another item of the run that wrote or read the same digest, else
 * read at the destination, which now holds the index: the source may meter manifest GETs. The
 * digest names the bytes, so any of these is the same list.
 */
async function childrenOf(
  dst: ReferrerEnd,
  written: Subject,
  lookups: ReferrerLookups | undefined,
): Promise<readonly Digest[]> {
  const read = async () => {
    if (written.children) return written.children;
    const bytes = await dst.manifest({ digest: written.digest });
    return parseDocument(IndexSchema, bytes, `index ${written.digest}`).manifests.map((m) => m.digest);
  };
  return lookups ? lookups.children(written.digest, read) : read();
}

/** Whether anything at the source refers to `digest` (for a destination that cannot hold it). */
export async function hasReferrers(src: ReferrerEnd, digest: Digest): Promise<boolean> {
  for (const suffix of COSIGN_SUFFIXES)
    if (await src.tagged(`sha256-${hexOf(digest)}.${suffix}`)) return true;
  return (await src.referrers(digest)).length > 0;
}

/**
 * A cosign tag at the destination that already holds every layer of the source's (same payload,
 * same annotations: the same signature) is kept, not overwritten: signatures added there (mirror
 * --sign-by-sigstore-private-key) must survive a re-run.
 */
async function holdsAllOf(
  src: ReferrerEnd,
  dst: ReferrerEnd,
  tag: string,
  sourceDigest: Digest | undefined,
): Promise<boolean> {
  const there = await dst.tagged(tag);
  if (!there || there.digest === sourceDigest) return false;
  const layers = async (end: ReferrerEnd) =>
    parseDocument(ImageManifestSchema, await end.manifest({ tag }), tag).layers.map((l) =>
      JSON.stringify([l.digest, l.annotations ?? {}]),
    );
  const held = new Set(await layers(dst));
  return (await layers(src)).every((l) => held.has(l));
}

/**
 * Makes a registry list `found` as referrers of `subject`: nothing to do where it has the referrers
 * API (it indexed them as their manifests were PUT); otherwise the referrers tag `sha256-<hex>` is
 * an index of them, extended with what it lacks and written only if it changed.
 */
async function listInRegistry(
  client: RegistryClient,
  dst: RegistryReference,
  subject: Digest,
  found: Descriptor[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const location = { endpoint: dst.endpoint, repository: dst.repository };
  const res = await client.request(
    dst.endpoint,
    [{ repository: dst.repository, actions: ['pull'] }],
    {
      method: 'GET',
      path: `/v2/${dst.repository}/referrers/${subject}`,
      headers: { accept: MediaType.ociIndex },
    },
    signal,
  );
  await res.body.dump();
  const type = headerValue(res.headers, 'content-type') ?? '';
  if (res.status === 200 && type.startsWith(MediaType.ociIndex)) return;
  const tag = `sha256-${hexOf(subject)}`;
  const existing = await client.headManifest(location, tag, ['pull'], signal);
  const listed: Descriptor[] = existing
    ? parseDocument(
        IndexSchema,
        (await client.getManifest(location, tag, signal)).bytes,
        `referrers tag ${tag} at ${formatReference(dst)}`,
      ).manifests
    : [];
  const missing = found.filter((d) => !listed.some((l) => l.digest === d.digest));
  if (!missing.length) return;
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...listed, ...missing] }),
  );
  await putManifest(client, location, tag, {
    bytes,
    mediaType: MediaType.ociIndex,
    digest: sha256(bytes),
  });
}
