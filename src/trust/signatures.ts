/**
 * Finding an image's signatures (the I/O half of trust; src/trust/decide.ts judges them):
 * simple signatures in a lookaside store (`<lookaside>/<repo>@sha256=<hex>/signature-N`, file: or
 * http(s):), cosign signatures under the `sha256-<hex>.sig` tag, and sigstore bundles that refer to
 * the manifest (OCI 1.1 referrers API, else the referrers tag `sha256-<hex>`). Every document is
 * bounded and digest-checked before it is parsed.
 */
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type Digest, sha256 } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import { type Descriptor, ImageManifestSchema, IndexSchema, parseDocument } from '../manifest/index.js';
import type { RegistryReference } from '../reference/index.js';
import type { RegistryClient, RepositoryLocation } from '../registry/client.js';
import { headerValue } from '../registry/http.js';
import type { CosignSignature } from './verify-sigstore.js';

/** No image has this many signatures; a store that says so is refused rather than read for ever. */
const MAX_SIGNATURES = 64;
const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;

export const COSIGN_SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

export interface FoundBundle {
  origin: string;
  bytes: Buffer;
}

function location(ref: RegistryReference): RepositoryLocation {
  return { endpoint: ref.endpoint, repository: ref.repository };
}

function hexOf(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/**
 * Simple signatures from the lookaside store, in order, until the first one that is not there. An
 * http(s): store is read through the registry client's HTTP layer, as containers/image reads it
 * with the registry's own HTTP client: the same proxy (HTTPS_PROXY, NO_PROXY), the registry's
 * certs.d directory or --cert-dir, retries and stall timeout; never its credentials.
 */
export async function lookasideSignatures(
  client: RegistryClient,
  base: string,
  ref: RegistryReference,
  manifestDigest: Digest,
  signal?: AbortSignal,
): Promise<Array<{ origin: string; bytes: Buffer }>> {
  const dir = `${base.replace(/\/+$/, '')}/${ref.repository}@${manifestDigest.replace(':', '=')}`;
  const found: Array<{ origin: string; bytes: Buffer }> = [];
  for (let n = 1; n <= MAX_SIGNATURES; n++) {
    const url = `${dir}/signature-${n}`;
    const bytes = await readLookaside(client, ref, url, signal);
    if (!bytes) return found;
    found.push({ origin: `lookaside signature-${n}`, bytes });
  }
  throw new VerificationError(`lookaside ${dir} holds more than ${MAX_SIGNATURES} signatures`);
}

async function readLookaside(
  client: RegistryClient,
  ref: RegistryReference,
  url: string,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') {
    const file = fileURLToPath(parsed);
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat) return undefined;
    if (stat.size > MAX_SIGNATURE_BYTES) throw new VerificationError(`signature ${file} is too large`);
    return fs.readFile(file);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UsageError(`lookaside ${url}: only file:, http: and https: are supported`);
  const res = await client.http.send({ method: 'GET', url: parsed, registry: ref.endpoint }, signal);
  if (res.status === 404) {
    await res.body.dump();
    return undefined;
  }
  if (res.status < 200 || res.status >= 300) {
    await res.body.dump();
    throw new VerificationError(`lookaside ${url}: HTTP ${res.status}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SIGNATURE_BYTES) {
      res.body.destroy();
      throw new VerificationError(`signature ${url} is too large`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A manifest by tag, or undefined when the tag does not exist. */
async function manifestIfTagged(
  client: RegistryClient,
  ref: RegistryReference,
  tag: string,
  signal?: AbortSignal,
) {
  try {
    return await client.getManifest(location(ref), tag, signal);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/** A small blob, read whole and checked against its digest. */
async function readBlob(
  client: RegistryClient,
  ref: RegistryReference,
  blob: Descriptor,
  signal?: AbortSignal,
) {
  if (blob.size > MAX_SIGNATURE_BYTES)
    throw new VerificationError(`signature blob ${blob.digest} is ${blob.size} bytes, too large`, {
      digest: blob.digest,
    });
  const stream = await client.openBlob(location(ref), blob.digest, signal);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > blob.size) break;
    chunks.push(chunk);
  }
  stream.destroy();
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== blob.size || sha256(bytes) !== blob.digest)
    throw new VerificationError(`signature blob ${blob.digest} does not match its digest`, {
      digest: blob.digest,
    });
  return bytes;
}

/** cosign's `sha256-<hex>.sig`: one simple-signing layer per signature, the signature in an annotation. */
export async function cosignSignatures(
  client: RegistryClient,
  ref: RegistryReference,
  manifestDigest: Digest,
  signal?: AbortSignal,
): Promise<CosignSignature[]> {
  const tag = `sha256-${hexOf(manifestDigest)}.sig`;
  const raw = await manifestIfTagged(client, ref, tag, signal);
  if (!raw) return [];
  const manifest = parseDocument(ImageManifestSchema, raw.bytes, `signature manifest ${tag}`);
  const layers = manifest.layers.filter((l) => l.mediaType === COSIGN_SIMPLESIGNING);
  if (layers.length > MAX_SIGNATURES)
    throw new VerificationError(`${tag} holds more than ${MAX_SIGNATURES} signatures`);
  return Promise.all(
    layers.map(async (layer, i) => {
      const a = layer.annotations ?? {};
      return {
        origin: `${tag} layer ${i}`,
        payload: await readBlob(client, ref, layer, signal),
        signature: a[COSIGN_SIGNATURE_ANNOTATION] ?? '',
        certificate: a['dev.sigstore.cosign/certificate'],
        chain: a['dev.sigstore.cosign/chain'],
        bundle: a['dev.sigstore.cosign/bundle'],
      };
    }),
  );
}

/**
 * Sigstore bundles that refer to the manifest: the referrers API when the registry has it, the
 * referrers tag schema (an index tagged `sha256-<hex>`) when it answers 404.
 */
export async function referrerBundles(
  client: RegistryClient,
  ref: RegistryReference,
  manifestDigest: Digest,
  signal?: AbortSignal,
): Promise<FoundBundle[]> {
  const descriptors = (await referrers(client, ref, manifestDigest, signal)).filter(
    (d) => d.artifactType === SIGSTORE_BUNDLE,
  );
  const found: FoundBundle[] = [];
  for (const d of descriptors.slice(0, MAX_SIGNATURES)) {
    const raw = await client.getManifest(location(ref), d.digest, signal);
    if (sha256(raw.bytes) !== d.digest)
      throw new VerificationError(`referrer ${d.digest} does not match its digest`);
    const manifest = parseDocument(ImageManifestSchema, raw.bytes, `referrer ${d.digest}`);
    if (manifest.subject?.digest !== manifestDigest) continue;
    for (const layer of manifest.layers.filter((l) => l.mediaType === SIGSTORE_BUNDLE))
      found.push({
        origin: `referrer ${d.digest.slice(0, 19)}`,
        bytes: await readBlob(client, ref, layer, signal),
      });
  }
  return found;
}

/** What refers to `digest`: the referrers API's answer, else the referrers tag schema's index. */
/**
 * What a caller already knows about a registry (mirror learns it once per run): that it answered
 * 404 to the referrers API (the distribution spec forbids that where the API exists), and which
 * tags the repository holds, so that an absent referrers tag costs no request at all.
 */
export interface ReferrersHints {
  /** The registry has no referrers API: ask the tag schema only. */
  noApi?: boolean | undefined;
  /** The repository's tags, when listed this run. */
  tags?: ReadonlySet<string> | undefined;
  /** Told when the registry answers 404 to the referrers API. */
  onNoApi?: (() => void) | undefined;
}

export async function referrers(
  client: RegistryClient,
  ref: RegistryReference,
  digest: Digest,
  signal?: AbortSignal,
  hints: ReferrersHints = {},
): Promise<Descriptor[]> {
  if (!hints.noApi) {
    const res = await client.request(
      ref.endpoint,
      [{ repository: ref.repository, actions: ['pull'] }],
      {
        method: 'GET',
        path: `/v2/${ref.repository}/referrers/${digest}`,
        headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      },
      signal,
    );
    const type = headerValue(res.headers, 'content-type') ?? '';
    if (res.status === 200 && type.startsWith('application/vnd.oci.image.index.v1+json')) {
      const bytes = Buffer.from(await res.body.arrayBuffer());
      if (bytes.length > MAX_SIGNATURE_BYTES)
        throw new VerificationError(`referrers of ${digest}: too large`);
      return parseDocument(IndexSchema, bytes, `referrers of ${digest}`).manifests;
    }
    await res.body.dump();
    if (res.status === 404) hints.onNoApi?.();
  }
  // No referrers API (404, or a registry answering something else): the tag schema, asked by HEAD
  // first so that an image with no referrers costs no counted manifest GET (rate limits).
  const tag = `sha256-${hexOf(digest)}`;
  if (hints.tags && !hints.tags.has(tag)) return [];
  if (!(await client.headManifest(location(ref), tag, ['pull'], signal))) return [];
  const raw = await manifestIfTagged(client, ref, tag, signal);
  if (!raw) return [];
  return parseDocument(IndexSchema, raw.bytes, `referrers tag ${tag}`).manifests;
}
