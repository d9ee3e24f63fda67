/**
 * The registry API skiff uses (distribution spec v2): manifests, streaming blobs that resume after
 * a dropped connection, and byte-range fetches for partial pulls. One instance per command run;
 * it owns the connection pools and the token cache.
 */
import type { Readable } from 'node:stream';
import { type Digest, isDigest } from '../digest/index.js';
import {
  NetworkError,
  NotFoundError,
  SkiffError,
  StallError,
  UnauthorizedError,
  VerificationError,
} from '../errors/index.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from '../manifest/index.js';
import {
  type ByteRange,
  MultipartTruncatedError,
  PartTruncatedError,
  type RangeConsumer,
  RangesNotHonouredError,
  rangeHeaderValue,
} from '../ranges/index.js';
import { Authenticator, foreignChallengeMessage, type Scope } from './auth.js';
import type { CredentialOptions } from './credentials.js';
import {
  errorDetail,
  HttpClient,
  type HttpClientOptions,
  type HttpRequest,
  type HttpResponse,
  headerValue,
  isRetriableNetworkError,
  statusToSkiffError,
} from './http.js';
import { multipartBoundary, parseContentRange, readMultipartByteranges } from './multipart.js';
import { isInsecureHost } from './pull-sources.js';
import { splitPart } from './range-split.js';
import type { RegistriesConfig } from './registries-conf.js';
import { isIdleTimeout, resumingBody } from './retry.js';

export interface RegistryClientOptions extends HttpClientOptions {
  credentials?: CredentialOptions;
  /** registries.conf: mirrors, locations, insecure and blocked registries (registries-conf.ts). */
  registries?: RegistriesConfig | undefined;
  /** Told when a registries.conf endpoint fails and which one serves (the CLI says and reports it). */
  onSource?: SourceListener;
}

/** An endpoint of registries.conf that failed (and what the source does next), or the one that served. */
export type SourceEvent =
  | {
      kind: 'failed';
      image: string;
      endpoint: string;
      mirror: boolean;
      what: string;
      error: string;
      next?: string;
    }
  /** `what` was served by `endpoint`: the manifest, or a blob or ranges after another endpoint failed. */
  | { kind: 'used'; image: string; endpoint: string; mirror: boolean; what: string };
export type SourceListener = (event: SourceEvent) => void;

/** Where a repository lives: the API host and the repository path. */
export interface RepositoryLocation {
  endpoint: string;
  repository: string;
}

export interface FetchedManifest {
  bytes: Buffer;
  contentType: string | undefined;
  /** Docker-Content-Digest, when the registry sent one (informational: we hash ourselves). */
  digestHeader: string | undefined;
}

export class RegistryClient {
  readonly http: HttpClient;
  readonly registries: RegistriesConfig | undefined;
  readonly onSource: SourceListener | undefined;
  private readonly auth: Authenticator;
  /** Manifest GETs sent, by registry host: what a registry that meters pulls counts. */
  private readonly manifestGets = new Map<string, number>();

  constructor(options: RegistryClientOptions = {}) {
    const registries = options.registries;
    this.http = new HttpClient({
      ...options,
      insecureHost: (host) => Boolean(options.insecureHost?.(host)) || isInsecureHost(registries, host),
    });
    this.registries = registries;
    this.onSource = options.onSource;
    this.auth = new Authenticator(this.http, options.credentials);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  /** Sends a request to `/v2/...` of a registry, answering auth challenges for the given scopes. */
  async request(
    endpoint: string,
    scopes: Scope[],
    request: Omit<HttpRequest, 'url'> & { path: string },
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const base = await this.http.baseUrl(endpoint);
    const registry = { host: endpoint, origin: base.origin };
    const url = new URL(request.path, base);
    const withAuth = (authorization: string | undefined): HttpRequest => ({
      method: request.method,
      url,
      headers: { ...request.headers, ...(authorization ? { authorization } : {}) },
      body: request.body ?? null,
    });
    const first = await this.http.send(withAuth(await this.auth.headerFor(registry, scopes)), signal);
    if (first.status !== 401) return first;
    const challenge = first.headers['www-authenticate'];
    await first.body.dump();
    // The 401 may come from where the registry redirected us: answerChallenge refuses that.
    const authorization = await this.auth.answerChallenge(registry, scopes, first.url, challenge);
    const second = await this.http.send(withAuth(authorization), signal);
    if (second.status === 401) {
      const detail = await errorDetail(second);
      throw new UnauthorizedError(
        second.url.origin === registry.origin
          ? `registry ${endpoint} refused the credentials for ${scopes[0]?.repository ?? '/v2/'}${detail ? `: ${detail}` : ''}`
          : foreignChallengeMessage(registry.host, second.url),
      );
    }
    return second;
  }

  /** Manifest GETs sent so far, by registry host (HEADs are not counted: registries do not count them). */
  manifestGetCounts(): Record<string, number> {
    return Object.fromEntries([...this.manifestGets].sort(([a], [b]) => a.localeCompare(b)));
  }

  async getManifest(
    location: RepositoryLocation,
    reference: string,
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
    this.manifestGets.set(location.endpoint, (this.manifestGets.get(location.endpoint) ?? 0) + 1);
    const res = await this.request(
      location.endpoint,
      [{ repository: location.repository, actions: ['pull'] }],
      {
        method: 'GET',
        path: `/v2/${location.repository}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT.join(', ') },
      },
      signal,
    );
    if (res.status !== 200) throw await failure(res, `manifest ${location.repository}:${reference}`);
    const declared = Number(headerValue(res.headers, 'content-length') ?? '0');
    if (declared > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new VerificationError(
        `manifest ${location.repository}:${reference} is ${declared} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`,
      );
    }
    const what = `manifest ${location.repository}:${reference}`;
    const bytes = await readLimited(res.body, MAX_MANIFEST_BYTES, what).catch((error: unknown) => {
      if (error instanceof SkiffError) throw error;
      if (isIdleTimeout(error)) throw new StallError(res.url.host, this.http.retry.stallTimeoutMs, {}, error);
      throw new NetworkError(`${what}: connection failed: ${(error as Error).message}`, {}, error);
    });
    return {
      bytes,
      contentType: headerValue(res.headers, 'content-type'),
      digestHeader: headerValue(res.headers, 'docker-content-digest'),
    };
  }

  /**
   * HEAD of a manifest: its digest, type and size without the body, or undefined when absent.
   * Registries that meter pulls (Docker Hub) count manifest GETs, never HEADs.
   */
  async headManifest(
    location: RepositoryLocation,
    reference: string,
    actions: Scope['actions'] = ['pull'],
    signal?: AbortSignal,
  ) {
    const res = await this.request(
      location.endpoint,
      [{ repository: location.repository, actions }],
      {
        method: 'HEAD',
        path: `/v2/${location.repository}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT.join(', ') },
      },
      signal,
    );
    await res.body.dump();
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw statusToSkiffError(
        res.status,
        `HEAD manifest ${location.repository}:${reference}: HTTP ${res.status}`,
      );
    const digest = headerValue(res.headers, 'docker-content-digest');
    return {
      digest: digest && isDigest(digest) ? digest : undefined,
      mediaType: headerValue(res.headers, 'content-type'),
      size: Number(headerValue(res.headers, 'content-length') ?? 'NaN'),
    };
  }

  /** HEAD of a blob: its size, or undefined when the repository does not have it. */
  async headBlob(location: RepositoryLocation, digest: Digest, actions: Scope['actions'] = ['pull']) {
    const res = await this.request(location.endpoint, [{ repository: location.repository, actions }], {
      method: 'HEAD',
      path: `/v2/${location.repository}/blobs/${digest}`,
    });
    await res.body.dump();
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw statusToSkiffError(res.status, `HEAD blob ${digest}: HTTP ${res.status}`);
    return { size: Number(headerValue(res.headers, 'content-length') ?? 'NaN') };
  }

  /**
   * Opens a blob as a stream. If the connection drops mid-body, the rest is requested again from
   * where it stopped (Range), so a reset costs a retry, not the whole layer. The bytes are not
   * verified here: the caller hashes them against the digest.
   */
  async openBlob(location: RepositoryLocation, digest: Digest, signal?: AbortSignal): Promise<Readable> {
    const first = await this.blobResponse(location, digest, 0, signal);
    return this.resumingBody(location, digest, first, 0, signal);
  }

  /**
   * Opens a blob from byte `offset` (a resumed pull holds the bytes before it). `start` is where
   * the stream actually begins: `offset` when the registry honoured the Range, 0 when it answered
   * with the whole blob (200) or a range other than the one asked for, in which case the caller
   * starts over.
   */
  async openBlobFrom(
    location: RepositoryLocation,
    digest: Digest,
    offset: number,
    signal?: AbortSignal,
  ): Promise<{ stream: Readable; start: number }> {
    let res = await this.blobResponse(location, digest, offset, signal);
    let start = offset;
    if (res.status === 200) start = 0;
    else if (!answersFrom(res, offset)) {
      res.body.destroy();
      res = await this.blobResponse(location, digest, 0, signal);
      start = 0;
    }
    return { stream: this.resumingBody(location, digest, res, start, signal), start };
  }

  private async blobResponse(
    location: RepositoryLocation,
    digest: Digest,
    offset: number,
    signal?: AbortSignal,
  ) {
    try {
      const res = await this.request(
        location.endpoint,
        [{ repository: location.repository, actions: ['pull'] }],
        {
          method: 'GET',
          path: `/v2/${location.repository}/blobs/${digest}`,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        },
        signal,
      );
      if (res.status !== 200 && res.status !== 206) throw await failure(res, `blob ${digest}`);
      return res;
    } catch (error) {
      throw error instanceof SkiffError ? error.withContext({ digest }) : error;
    }
  }

  /** The body of `first` (starting at `base` in the blob), resumed by the retry policy when it drops. */
  private resumingBody(
    location: RepositoryLocation,
    digest: Digest,
    first: HttpResponse,
    base: number,
    signal?: AbortSignal,
  ): Readable {
    return resumingBody(this.http.retrySettings, {
      digest,
      first,
      base,
      signal,
      reopen: (offset, stop) => this.blobResponse(location, digest, offset, stop),
    });
  }

  /**
   * Fetches byte ranges of a blob with one `Range` request, handing each range to `onRange` as a
   * stream, in ascending order. Multipart answers are parsed as they arrive. A dropped connection
   * retries the ranges not yet delivered. Throws RangesNotHonouredError when the server ignores
   * Range or answers without the ranges asked for.
   */
  async fetchRanges(
    location: RepositoryLocation,
    digest: Digest,
    ranges: readonly ByteRange[],
    onRange: RangeConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    let pending = [...ranges].sort((a, b) => a.start - b.start);
    const answeredBy = { host: location.endpoint };
    await this.http.retrying(
      {
        signal,
        watchesBytes: true,
        // Each retry asks only for the ranges not yet delivered, so progress cannot go on forever.
        maxFailures: Number.POSITIVE_INFINITY,
        step: () => ({
          host: answeredBy.host,
          digest,
          retriable: isTransientRangeFailure,
          final: (cause) => finalRangeError(cause, digest),
        }),
      },
      async (progress) => {
        // A connection lost after the last range was delivered leaves nothing to ask for.
        if (pending.length === 0) return;
        const delivered: ByteRange[] = [];
        answeredBy.host = location.endpoint;
        const asked = pending;
        try {
          await this.fetchRangesOnce(location, digest, pending, onRange, delivered, answeredBy, signal);
        } finally {
          // Ranges delivered before a failure are not asked for again, and count as progress.
          if (delivered.length > 0) progress.progressed();
          pending = pending.filter((r) => !delivered.includes(r));
        }
        // One range asked for and a 206 without it: not a server that refuses several ranges (the
        // strategy would only ask again, one range at a time), a server that lies.
        if (asked.length === 1 && pending.length === 1) {
          throw new VerificationError(
            `blob ${digest}: the registry's range answer does not hold the bytes ${asked[0]!.start}-${asked[0]!.end - 1} asked for`,
            { digest },
          );
        }
        if (pending.length > 0) {
          throw new RangesNotHonouredError(
            'multi-range-refused',
            `blob ${digest}: the registry answered without ${pending.length} of the ranges asked for`,
          );
        }
      },
    );
  }

  private async fetchRangesOnce(
    location: RepositoryLocation,
    digest: Digest,
    ranges: ByteRange[],
    onRange: RangeConsumer,
    delivered: ByteRange[],
    answeredBy: { host: string },
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.request(
      location.endpoint,
      [{ repository: location.repository, actions: ['pull'] }],
      {
        method: 'GET',
        path: `/v2/${location.repository}/blobs/${digest}`,
        headers: { range: rangeHeaderValue(ranges) },
      },
      signal,
    );
    answeredBy.host = res.url.host;
    if (res.status === 200) {
      res.body.destroy();
      throw new RangesNotHonouredError(
        'ignored',
        `blob ${digest}: the registry ignored the Range header (HTTP 200)`,
      );
    }
    if (res.status !== 206) throw await failure(res, `blob ${digest} (ranges)`);
    const track: RangeConsumer = async (range, data) => {
      await onRange(range, data);
      delivered.push(range);
    };
    const boundary = multipartBoundary(headerValue(res.headers, 'content-type') ?? '');
    try {
      if (boundary) {
        await readMultipartByteranges(res.body, boundary, async (part, data) => {
          await splitPart(data, part.start, within(ranges, part.start, part.end, delivered), track);
        });
      } else {
        const part = parseContentRange(headerValue(res.headers, 'content-range') ?? '');
        await splitPart(res.body, part.start, within(ranges, part.start, part.end, delivered), track);
      }
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  }
}

function isTransientRangeFailure(error: unknown): boolean {
  return (
    isRetriableNetworkError(error) ||
    error instanceof PartTruncatedError ||
    error instanceof MultipartTruncatedError
  );
}

/** A range fetch that failed for good, as the error the pull reports. */
function finalRangeError(error: unknown, digest: Digest): unknown {
  if (error instanceof PartTruncatedError || error instanceof MultipartTruncatedError) {
    return new VerificationError(`blob ${digest}: range answer truncated (${error.message})`, { digest });
  }
  if (isTransientRangeFailure(error))
    return new NetworkError(
      `blob ${digest}: range request failed: ${(error as Error).message}`,
      { digest },
      error,
    );
  return error;
}

/** Whether a 206 answer starts at `offset` (a server may answer another range than asked for). */
function answersFrom(res: HttpResponse, offset: number): boolean {
  try {
    return parseContentRange(headerValue(res.headers, 'content-range') ?? '').start === offset;
  } catch {
    return false;
  }
}

function within(
  ranges: readonly ByteRange[],
  start: number,
  end: number,
  delivered: readonly ByteRange[],
): ByteRange[] {
  return ranges.filter((r) => r.start >= start && r.end <= end && !delivered.includes(r));
}

async function failure(res: HttpResponse, what: string) {
  const detail = await errorDetail(res);
  if (res.status === 404) return new NotFoundError(`${what} not found${detail ? ` (${detail})` : ''}`);
  return statusToSkiffError(res.status, `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`);
}

async function readLimited(
  body: AsyncIterable<Buffer> & { destroy(): void },
  limit: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new VerificationError(`${what} is larger than the ${limit}-byte limit`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
