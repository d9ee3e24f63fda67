/**
 * The push half of the distribution API, as functions over a RegistryClient: blob existence,
 * cross-repository mounts, monolithic and chunked uploads, manifest PUT, and tag listing.
 * Bodies are streamed; a stream cannot be replayed, so a failed streaming upload is retried by the
 * caller (which can reopen its source), while buffered chunks are retried here by the HTTP layer.
 */
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Digest } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import type { Scope } from './auth.js';
import type { RegistryClient, RepositoryLocation } from './client.js';
import { errorDetail, type HttpResponse, headerValue, type Method, statusToSkiffError } from './http.js';

/** Push scope on the destination; pull too, since the same token HEADs and GETs there. */
export function pushScopes(location: RepositoryLocation, mountFrom?: string): Scope[] {
  const scopes: Scope[] = [{ repository: location.repository, actions: ['pull', 'push'] }];
  if (mountFrom && mountFrom !== location.repository)
    scopes.push({ repository: mountFrom, actions: ['pull'] });
  return scopes;
}

export type UploadStart = { kind: 'mounted' } | { kind: 'session'; url: string };

/**
 * Opens an upload session. With `mountFrom` (a repository on the same registry) the registry may
 * mount the blob instead: 201 means done without a byte sent; 202 means it declined and opened
 * an ordinary session, which the caller uses for the upload.
 */
export async function startUpload(
  client: RegistryClient,
  location: RepositoryLocation,
  mount?: { digest: Digest; from: string },
): Promise<UploadStart> {
  const query = mount
    ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}`
    : '';
  const res = await send(
    client,
    location,
    mount?.from,
    'POST',
    `/v2/${location.repository}/blobs/uploads/${query}`,
  );
  await res.body.dump();
  if (res.status === 201 && mount) return { kind: 'mounted' };
  if (res.status !== 202) throw await pushFailure(res, `start blob upload to ${location.repository}`);
  return { kind: 'session', url: nextLocation(res, location) };
}

/** One PUT carrying the whole blob (streamed), closing the session under `digest`. */
export async function uploadMonolithic(
  client: RegistryClient,
  location: RepositoryLocation,
  sessionUrl: string,
  blob: { digest: Digest; size?: number | undefined },
  body: Readable,
  signal?: AbortSignal,
): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (blob.size !== undefined) headers['content-length'] = String(blob.size);
  const res = await send(client, location, undefined, 'PUT', withDigest(sessionUrl, blob.digest), {
    headers,
    body,
    signal,
  });
  await expectCreated(res, blob.digest, location);
}

/**
 * PATCHes the blob in chunks of `chunkSize` bytes read from `body` (each chunk is a buffer, so the
 * HTTP layer retries it on its own; memory stays bounded by one chunk), then closes with a PUT.
 */
export async function uploadChunked(
  client: RegistryClient,
  location: RepositoryLocation,
  sessionUrl: string,
  digest: Digest,
  body: AsyncIterable<Buffer>,
  chunkSize: number,
  signal?: AbortSignal,
): Promise<void> {
  let url = sessionUrl;
  let offset = 0;
  for await (const chunk of rechunk(body, chunkSize)) {
    const res = await send(client, location, undefined, 'PATCH', url, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${offset}-${offset + chunk.length - 1}`,
        'content-length': String(chunk.length),
      },
      body: chunk,
      signal,
    });
    await res.body.dump();
    if (res.status !== 202 && res.status !== 204)
      throw await pushFailure(res, `upload chunk at ${offset} of ${digest}`);
    offset += chunk.length;
    url = nextLocation(res, location, url);
  }
  const res = await send(client, location, undefined, 'PUT', withDigest(url, digest), {
    headers: { 'content-length': '0' },
    signal,
  });
  await expectCreated(res, digest, location);
}

/** Abandons a session (best effort: the registry expires it anyway). */
export async function cancelUpload(
  client: RegistryClient,
  location: RepositoryLocation,
  sessionUrl: string,
): Promise<void> {
  try {
    const res = await send(client, location, undefined, 'DELETE', sessionUrl);
    await res.body.dump();
  } catch {
    // nothing to do: an abandoned session is garbage-collected by the registry
  }
}

/** PUTs a manifest's exact bytes under a tag or digest; returns the digest the registry reports. */
export async function putManifest(
  client: RegistryClient,
  location: RepositoryLocation,
  reference: string,
  manifest: { bytes: Buffer; mediaType: string; digest: Digest },
): Promise<void> {
  const res = await send(
    client,
    location,
    undefined,
    'PUT',
    `/v2/${location.repository}/manifests/${reference}`,
    {
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
    },
  );
  // A refusal's body names why (MANIFEST_BLOB_UNKNOWN, …): read it before anything drains it.
  if (res.status !== 201 && res.status !== 200 && res.status !== 202)
    throw await pushFailure(res, `PUT manifest ${location.repository}:${reference}`);
  await res.body.dump().catch(() => undefined);
  const reported = headerValue(res.headers, 'docker-content-digest');
  if (reported && reported !== manifest.digest) {
    throw new VerificationError(
      `registry stored manifest ${location.repository}:${reference} as ${reported}, not ${manifest.digest} (it rewrote the bytes)`,
      { digest: manifest.digest },
    );
  }
}

const TagListSchema = z.object({ name: z.string().optional(), tags: z.array(z.string()).nullish() });

/** Every tag of a repository, following `Link: <...>; rel="next"` pagination, sorted. */
export async function listTags(client: RegistryClient, location: RepositoryLocation): Promise<string[]> {
  const tags = new Set<string>();
  let next: string | undefined = `/v2/${location.repository}/tags/list?n=1000`;
  for (let page = 0; next && page < 10_000; page++) {
    const res = await client.request(
      location.endpoint,
      [{ repository: location.repository, actions: ['pull'] }],
      {
        method: 'GET',
        path: next,
      },
    );
    if (res.status === 404) {
      await res.body.dump();
      throw new NotFoundError(`repository ${location.repository} not found at ${location.endpoint}`);
    }
    if (res.status !== 200) throw await pushFailure(res, `list tags of ${location.repository}`);
    const parsed = TagListSchema.safeParse(await res.body.json().catch(() => undefined));
    if (!parsed.success) throw new VerificationError(`tag list of ${location.repository} is malformed`);
    for (const tag of parsed.data.tags ?? []) tags.add(tag);
    next = nextPage(headerValue(res.headers, 'link'));
  }
  return [...tags].sort();
}

function nextPage(link: string | undefined): string | undefined {
  const match = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  return match?.[1];
}

interface SendOptions {
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal | undefined;
}

/**
 * Sends to a path or an upload URL the registry handed out. Credentials go only to the registry
 * itself: an upload URL on another origin (storage redirect) gets the request without them.
 */
async function send(
  client: RegistryClient,
  location: RepositoryLocation,
  mountFrom: string | undefined,
  method: Method,
  pathOrUrl: string,
  options: SendOptions = {},
): Promise<HttpResponse> {
  const base = await client.http.baseUrl(location.endpoint);
  const url = new URL(pathOrUrl, base);
  const request = { method, headers: options.headers ?? {}, body: options.body ?? null };
  if (url.origin !== base.origin) return client.http.send({ ...request, url }, options.signal);
  return client.request(
    location.endpoint,
    pushScopes(location, mountFrom),
    { ...request, path: `${url.pathname}${url.search}` },
    options.signal,
  );
}

function withDigest(sessionUrl: string, digest: Digest): string {
  // Session URLs may carry their own state (`?_state=...`): add to the query, do not replace it.
  const url = new URL(sessionUrl, 'http://placeholder.invalid');
  url.searchParams.set('digest', digest);
  return /^https?:\/\//.test(sessionUrl) ? url.toString() : `${url.pathname}${url.search}`;
}

function nextLocation(res: HttpResponse, location: RepositoryLocation, fallback?: string): string {
  const value = headerValue(res.headers, 'location');
  if (value) return value;
  if (fallback) return fallback;
  throw new VerificationError(`registry gave no upload location for ${location.repository}`);
}

async function expectCreated(res: HttpResponse, digest: Digest, location: RepositoryLocation): Promise<void> {
  if (res.status === 201 || res.status === 204) {
    await res.body.dump();
    return;
  }
  const error = await pushFailure(res, `upload of blob ${digest} to ${location.repository}`);
  // The registry hashes what it received: a mismatch there is a verification failure, not a network one.
  if (res.status === 400 && /DIGEST_INVALID/i.test(error.message))
    throw new VerificationError(error.message, { digest });
  throw error;
}

async function pushFailure(res: HttpResponse, what: string) {
  const detail = await errorDetail(res);
  return statusToSkiffError(res.status, `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`);
}

/** Regroups a byte stream into chunks of exactly `size` bytes (the last may be shorter). */
export async function* rechunk(input: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const piece of input) {
    let rest = piece;
    while (length + rest.length >= size) {
      const take = size - length;
      parts.push(rest.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      length = 0;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      parts.push(rest);
      length += rest.length;
    }
  }
  if (length > 0) yield Buffer.concat(parts);
}
