/**
 * The registry API skiff uses (distribution spec v2): manifests, streaming blobs that resume after
 * a dropped connection, and byte-range fetches for partial pulls. One instance per command run;
 * it owns the connection pools and the token cache.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
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
import { shortDigest } from '../util/present.js';
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
import { splitPart } from './range-split.js';
import { isIdleTimeout } from './retry.js';

export interface RegistryClientOptions extends HttpClientOptions {
  credentials?: CredentialOptions;
}

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
  private readonly auth: Authenticator;

  constructor(options: RegistryClientOptions = {}) {
    this.http = new HttpClient(options);
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

  async getManifest(
    location: RepositoryLocation,
    reference: string,
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
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

  /** HEAD of a manifest: its digest and type without the body, or undefined when absent. */
  async headManifest(location: RepositoryLocation, reference: string, actions: Scope['actions'] = ['pull']) {
    const res = await this.request(location.endpoint, [{ repository: location.repository, actions }], {
      method: 'HEAD',
      path: `/v2/${location.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
    });
    await res.body.dump();
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw statusToSkiffError(
        res.status,
        `HEAD manifest ${location.repository}:${reference}: HTTP ${res.status}`,
      );
    return {
      digest: headerValue(res.headers, 'docker-content-digest'),
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
    return Readable.from(this.resumingBody(location, digest, first, signal), {
      objectMode: false,
      highWaterMark: 1 << 20,
    });
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
    const stream = Readable.from(this.resumingBody(location, digest, res, signal, start), {
      objectMode: false,
      highWaterMark: 1 << 20,
    });
    return { stream, start };
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

  private async *resumingBody(
    location: RepositoryLocation,
    digest: Digest,
    first: HttpResponse,
    signal?: AbortSignal,
    /** Where `first`'s body starts in the blob. */
    base = 0,
  ) {
    let res = first;
    let delivered = 0;
    // Progress resets the consecutive failures; the total is bounded too, so a server that always
    // drops after a few bytes cannot keep us forever.
    const retries = this.http.retryBudget({
      signal,
      maxFailures: Math.max(1, this.http.retry.retries) * 4,
      watchesBytes: true,
    });
    for (;;) {
      const reading = res;
      // A 200 to a resume means the server restarted from byte 0: skip what was already delivered.
      let skip = reading.status === 200 ? base + delivered : 0;
      try {
        for await (const chunk of reading.body as AsyncIterable<Buffer>) {
          let piece = chunk;
          if (skip > 0) {
            const drop = Math.min(skip, piece.length);
            skip -= drop;
            piece = piece.subarray(drop);
            if (piece.length === 0) continue;
          }
          delivered += piece.length;
          retries.progressed();
          yield piece;
        }
        return;
      } catch (error) {
        await retries.next(error, {
          host: reading.url.host,
          digest,
          reason: `connection to ${reading.url.host} failed after ${delivered} bytes of blob ${shortDigest(digest)} (${(error as Error).message})`,
          final: (cause) =>
            new NetworkError(
              `blob ${digest}: connection failed after ${delivered} bytes: ${(cause as Error).message}`,
              { digest },
              cause,
            ),
        });
        res = await this.blobResponse(location, digest, base + delivered, signal);
      } finally {
        // Only the body this turn was reading: `res` may already be the resumed response.
        if (!reading.body.destroyed) reading.body.destroy();
      }
    }
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
    const retries = this.http.retryBudget({ signal, watchesBytes: true });
    while (pending.length > 0) {
      const delivered: ByteRange[] = [];
      const answeredBy = { host: location.endpoint };
      try {
        await this.fetchRangesOnce(location, digest, pending, onRange, delivered, answeredBy, signal);
        const asked = pending;
        pending = pending.filter((r) => !delivered.includes(r));
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
      } catch (error) {
        if (delivered.length > 0) retries.progressed();
        pending = pending.filter((r) => !delivered.includes(r));
        await retries.next(error, {
          host: answeredBy.host,
          digest,
          retriable: isTransientRangeFailure,
          final: (cause) => finalRangeError(cause, digest),
        });
      }
    }
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
