// A registry stand-in for the faults a real registry will not produce on demand. It serves msw
// request handlers on a real loopback port (skiff's client is undici's `request()`, which msw's
// interceptors do not see), resolving each incoming request with msw's `getResponse()` and
// proxying to a real upstream registry whatever no handler answers (or a handler passes through).
//
// Fault handlers are built by factories that receive `next`: the response the handlers after them
// (and finally the upstream) give for a request. A fault can therefore rewrite a request on its way
// in (drop a Range header) or a response on its way out (cut its body short), and faults compose:
// listed first is outermost. Faults that change blob bytes ask `next` for the whole blob and serve
// ranges of it themselves, so a delivery fault listed before them sees their bytes.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { getResponse, HttpResponse, isPassthroughResponse, http as mswHttp, type RequestHandler } from 'msw';

export interface StandInRecord {
  seq: number;
  method: string;
  path: string;
  /** The request's Range header, if any. */
  range: string | undefined;
  status: number;
  /** Body bytes written to the client. */
  bytesSent: number;
  /** The stand-in reset the connection mid-body. */
  reset: boolean;
  /** Date.now() when the request arrived, and when its answer was finished. */
  at: number;
  doneAt: number;
}

export interface FaultContext {
  /** What the handlers after this one (and then the upstream) answer to `request`. */
  next(request: Request): Promise<Response>;
  /** host:port of the upstream registry. */
  upstream: string;
}

/** A composable fault: a factory for an msw handler that may delegate to `next`. */
export type Fault = (context: FaultContext) => RequestHandler;

export interface StandIn {
  /** host:port to pull from (loopback, so skiff speaks plain HTTP to it). */
  readonly host: string;
  readonly upstream: string;
  /** Every request the stand-in answered, in arrival order. */
  readonly log: StandInRecord[];
  /** Exceptions thrown by handlers (answered with 500); a test should expect none. */
  readonly errors: unknown[];
  /** Adds faults or plain msw handlers after those already installed. */
  use(...handlers: Array<Fault | RequestHandler>): void;
  /** Drops every handler and clears the log. */
  reset(): void;
  /** Requests for one blob (GET unless said otherwise). */
  blobRequests(digest: string, method?: string): StandInRecord[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
]);

export async function startStandIn(upstream: string): Promise<StandIn> {
  const handlers: RequestHandler[] = [];
  const log: StandInRecord[] = [];
  const errors: unknown[] = [];
  const sockets = new Set<net.Socket>();
  let host = '';

  const proxy = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    for (const name of ['host', 'content-length', 'accept-encoding', ...HOP_BY_HOP]) headers.delete(name);
    headers.set('accept-encoding', 'identity');
    const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
    const res = await fetch(`http://${upstream}${url.pathname}${url.search}`, {
      method: request.method,
      headers,
      body: hasBody ? await request.arrayBuffer() : null,
      redirect: 'manual',
    });
    const location = res.headers.get('location');
    if (!location?.startsWith(`http://${upstream}/`)) return res;
    const rewritten = new Headers(res.headers);
    rewritten.set('location', location.replace(`http://${upstream}/`, `http://${host}/`));
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers: rewritten });
  };

  const resolveFrom = async (index: number, request: Request): Promise<Response> => {
    const rest = handlers.slice(index);
    const response = rest.length > 0 ? await getResponse(rest, request) : undefined;
    if (!response || isPassthroughResponse(response)) return proxy(request);
    return response;
  };

  const server = http.createServer((req, res) => {
    void serve(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const serve = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const record: StandInRecord = {
      seq: log.length,
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0]!,
      range: typeof req.headers.range === 'string' ? req.headers.range : undefined,
      status: 0,
      bytesSent: 0,
      reset: false,
      at: Date.now(),
      doneAt: 0,
    };
    log.push(record);
    const body: Buffer[] = [];
    for await (const chunk of req) body.push(chunk as Buffer);
    const headers = new Headers();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const hasBody = record.method !== 'GET' && record.method !== 'HEAD';
    const request = new Request(`http://${host}${req.url}`, {
      method: record.method,
      headers,
      ...(hasBody ? { body: Buffer.concat(body) } : {}),
    });
    let response: Response;
    try {
      response = await resolveFrom(0, request);
    } catch (error) {
      errors.push(error);
      response = new Response(`stand-in handler failed: ${(error as Error).message}`, { status: 500 });
    }
    record.status = response.status;
    const outHeaders: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name) && name !== 'x-msw-intention') outHeaders[name] = value;
    });
    res.writeHead(response.status, response.statusText || undefined, outHeaders);
    if (!response.body || record.method === 'HEAD') {
      await response.body?.cancel();
      res.end();
      record.doneAt = Date.now();
      return;
    }
    res.flushHeaders();
    const reader = response.body.getReader();
    const closed = once(res, 'close');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (res.destroyed) {
          await reader.cancel();
          break;
        }
        record.bytesSent += value.length;
        const flushed = new Promise<void>((resolve) => res.write(value, () => resolve()));
        await Promise.race([flushed, closed]);
      }
      res.end();
    } catch {
      // The body failed mid-way: the client must see a connection reset, not a clean end.
      record.reset = true;
      await new Promise((resolve) => setTimeout(resolve, 10));
      req.socket.resetAndDestroy();
    }
    record.doneAt = Date.now();
  };

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;

  return {
    host,
    upstream,
    log,
    errors,
    use(...items) {
      for (const item of items) {
        if (typeof item !== 'function') {
          handlers.push(item);
          continue;
        }
        const slot: { handler?: RequestHandler } = {};
        slot.handler = item({
          next: (request) => resolveFrom(handlers.indexOf(slot.handler!) + 1, request),
          upstream,
        });
        handlers.push(slot.handler);
      }
    },
    reset() {
      handlers.length = 0;
      log.length = 0;
      errors.length = 0;
    },
    blobRequests(digest, method = 'GET') {
      return log.filter((r) => r.method === method && r.path.endsWith(`/blobs/${digest}`));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

// ---- request matching and byte ranges ------------------------------------------------------------

const BLOB_PATH = /\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;
const MANIFEST_PATH = /\/v2\/(.+)\/manifests\/([^/]+)$/;

/** Which requests a fault applies to; all blobs when nothing is said. */
export interface BlobMatch {
  /** Only this blob. */
  digest?: string;
}

export function blobDigestOf(request: Request): string | undefined {
  return BLOB_PATH.exec(new URL(request.url).pathname)?.[2];
}

function matchesBlob(request: Request, match: BlobMatch): boolean {
  const digest = blobDigestOf(request);
  return digest !== undefined && (match.digest === undefined || match.digest === digest);
}

/** A half-open byte range. */
export interface Range {
  start: number;
  end: number;
}

/** Parses `bytes=a-b,c-,...` against a blob of `total` bytes; open ends run to the end. */
export function parseRangeHeader(value: string, total: number): Range[] {
  const match = /^bytes=(.+)$/.exec(value.trim());
  if (!match) throw new Error(`stand-in: unsupported Range header ${value}`);
  return match[1]!.split(',').map((spec) => {
    const [first, last] = spec.trim().split('-');
    const start = Number(first);
    const end = last === '' || last === undefined ? total : Math.min(Number(last) + 1, total);
    if (!Number.isSafeInteger(start) || !(start < end)) throw new Error(`stand-in: bad range ${spec}`);
    return { start, end };
  });
}

function withoutRange(request: Request): Request {
  const headers = new Headers(request.headers);
  headers.delete('range');
  return new Request(request.url, { method: request.method, headers });
}

/** The whole blob, as the handlers after this one serve it (they must answer 200). */
async function wholeBlob(
  context: FaultContext,
  request: Request,
): Promise<{ bytes: Buffer; headers: Headers }> {
  const res = await context.next(withoutRange(request));
  if (res.status !== 200) throw new Error(`stand-in: whole blob answered HTTP ${res.status}`);
  return { bytes: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

export interface RangeAnswerOptions {
  /** Rewrites the data of part `index` (0-based, in the order asked). */
  mutatePart?: (index: number, data: Buffer) => Buffer;
  /** Ends the body (cleanly) after `keep` data bytes of part `index`: no further parts, no closing boundary. */
  endInPart?: { index: number; keep: number };
}

/**
 * Answers a Range request from a whole blob the way distribution does: a plain 206 for one range,
 * `multipart/byteranges` (Go's multipart writer layout) for several.
 */
export function rangeAnswer(
  blob: Buffer,
  header: string,
  contentType: string,
  options: RangeAnswerOptions = {},
): Response {
  const total = blob.length;
  const ranges = parseRangeHeader(header, total);
  const data = ranges.map((r, i) => {
    const slice = Buffer.from(blob.subarray(r.start, r.end));
    return options.mutatePart ? options.mutatePart(i, slice) : slice;
  });
  const contentRange = (r: Range) => `bytes ${r.start}-${r.end - 1}/${total}`;
  if (ranges.length === 1) {
    const cut = options.endInPart?.index === 0 ? data[0]!.subarray(0, options.endInPart.keep) : data[0]!;
    return new HttpResponse(cut, {
      status: 206,
      headers: {
        'content-type': contentType,
        'content-range': contentRange(ranges[0]!),
        // A body cut short is sent chunked, so the client sees a clean end, not a stalled connection.
        ...(options.endInPart ? {} : { 'content-length': String(cut.length) }),
      },
    });
  }
  const boundary = randomBytes(15).toString('hex');
  const pieces: Buffer[] = [];
  for (const [i, range] of ranges.entries()) {
    const head = `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: ${contentRange(range)}\r\n\r\n`;
    pieces.push(Buffer.from(head, 'latin1'));
    if (options.endInPart?.index === i) {
      pieces.push(data[i]!.subarray(0, options.endInPart.keep));
      break;
    }
    pieces.push(data[i]!);
  }
  if (!options.endInPart) pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
  const body = Buffer.concat(pieces);
  return new HttpResponse(body, {
    status: 206,
    headers: {
      'content-type': `multipart/byteranges; boundary=${boundary}`,
      // A body cut short is sent chunked, so the client sees a clean end, not a stalled connection.
      ...(options.endInPart ? {} : { 'content-length': String(body.length) }),
    },
  });
}

/** A copy of a response with another body (headers kept, Content-Length dropped: the length changes). */
function replaceBody(res: Response, body: ReadableStream<Uint8Array> | null): Response {
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  return new Response(body, { status: res.status, statusText: res.statusText, headers });
}

/** Passes `limit` bytes of `body`, then fails it (the stand-in turns that into a connection reset). */
function cutStream(body: ReadableStream<Uint8Array>, limit: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= limit) {
        await reader.cancel().catch(() => undefined);
        controller.error(new Error('stand-in: connection reset'));
        return;
      }
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      const room = limit - sent;
      const piece = value.length > room ? value.subarray(0, room) : value;
      sent += piece.length;
      controller.enqueue(piece);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** Counts matching requests: `take()` is true for the first `times` of them. */
function budget(times: number) {
  let used = 0;
  return {
    take: () => used++ < times,
    get used() {
      return used;
    },
  };
}

// ---- faults ----------------------------------------------------------------------------------------

/** Answers Range requests with 200 and the whole blob (after letting the first `skip` through). */
export function ignoreRange(options: BlobMatch & { skip?: number } = {}): Fault {
  let seen = 0;
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      if (!matchesBlob(request, options) || !request.headers.has('range')) return undefined;
      if (seen++ < (options.skip ?? 0)) return undefined;
      return context.next(withoutRange(request));
    });
}

/**
 * Serves one range per request only. A multi-range request gets a plain 206 of its first range
 * (`answer: 'first'`, what some CDNs do) or 200 with the whole blob (`answer: 'whole'`).
 */
export function singleRangeOnly(options: BlobMatch & { answer: 'first' | 'whole' }): Fault {
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      const header = request.headers.get('range');
      if (!matchesBlob(request, options) || !header?.includes(',')) return undefined;
      if (options.answer === 'whole') return context.next(withoutRange(request));
      const first = /^bytes=([^,]+)/.exec(header)![1]!;
      const headers = new Headers(request.headers);
      headers.set('range', `bytes=${first}`);
      return context.next(new Request(request.url, { method: 'GET', headers }));
    });
}

/**
 * Cuts a multi-range answer short inside part `part` after `keep` bytes. `how: 'end-body'` ends the
 * body there (a clean end, no closing boundary); `'short-part'` drops the rest of that part's data
 * but goes on with the next parts (the part is shorter than its Content-Range says). With
 * `anyRange`, single-range answers are cut too (a plain 206 shorter than its Content-Range).
 */
export function truncatePart(
  options: BlobMatch & {
    part?: number;
    keep: number;
    how: 'end-body' | 'short-part';
    times?: number;
    anyRange?: boolean;
  },
): Fault {
  const left = budget(options.times ?? Number.POSITIVE_INFINITY);
  const index = options.part ?? 0;
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      const header = request.headers.get('range');
      if (!matchesBlob(request, options) || !header) return undefined;
      if (!(options.anyRange || header.includes(',')) || !left.take()) return undefined;
      const { bytes, headers } = await wholeBlob(context, request);
      const type = headers.get('content-type') ?? 'application/octet-stream';
      return rangeAnswer(
        bytes,
        header,
        type,
        options.how === 'end-body'
          ? { endInPart: { index, keep: options.keep } }
          : { mutatePart: (i, data) => (i === index ? data.subarray(0, options.keep) : data) },
      );
    });
}

/**
 * Flips one byte (at `at` within the part, its middle by default) of part `part` of range answers,
 * after letting the first `skip` range requests through (e.g. the one that reads the TOC).
 */
export function corruptPart(
  options: BlobMatch & { part?: number; at?: number; times?: number; skip?: number },
): Fault {
  const left = budget(options.times ?? Number.POSITIVE_INFINITY);
  const index = options.part ?? 0;
  let seen = 0;
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      const header = request.headers.get('range');
      if (!matchesBlob(request, options) || !header || seen++ < (options.skip ?? 0)) return undefined;
      if (!left.take()) return undefined;
      const { bytes, headers } = await wholeBlob(context, request);
      return rangeAnswer(bytes, header, headers.get('content-type') ?? 'application/octet-stream', {
        mutatePart: (i, data) => {
          if (i !== index) return data;
          const at = options.at ?? Math.floor(data.length / 2);
          data[at] = data[at]! ^ 0xff;
          return data;
        },
      });
    });
}

/**
 * Serves a blob whose byte at absolute `offset` (the middle by default) is flipped: its bytes no
 * longer match its digest. `rangesOnly` corrupts only what Range requests see (whole-blob GETs
 * stay intact), e.g. to break a TOC while a full pull still gets good bytes.
 */
export function corruptBlob(options: BlobMatch & { offset?: number; rangesOnly?: boolean }): Fault {
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      const header = request.headers.get('range');
      if (!matchesBlob(request, options) || (options.rangesOnly && !header)) return undefined;
      const { bytes, headers } = await wholeBlob(context, request);
      const at = options.offset ?? Math.floor(bytes.length / 2);
      const bad = Buffer.from(bytes);
      bad[at] = bad[at]! ^ 0xff;
      const type = headers.get('content-type') ?? 'application/octet-stream';
      if (header) return rangeAnswer(bad, header, type);
      return new HttpResponse(bad, {
        status: 200,
        headers: { 'content-type': type, 'content-length': String(bad.length) },
      });
    });
}

/**
 * Resets the connection when a blob answer reaches absolute blob offset `at` (so a resumed
 * request starting at or after `at` is reset before its first byte), or, with `afterBytes`, once
 * that many body bytes went out (for multipart answers). `times` resets, then answers normally
 * (default: always). `rangesOnly` leaves whole-blob GETs alone; the first `skip` matching requests
 * are let through.
 */
export function resetAt(
  options: BlobMatch &
    ({ at: number; afterBytes?: undefined } | { afterBytes: number; at?: undefined }) & {
      times?: number;
      rangesOnly?: boolean;
      skip?: number;
    },
): Fault {
  const left = budget(options.times ?? Number.POSITIVE_INFINITY);
  let seen = 0;
  return (context) =>
    mswHttp.get(BLOB_PATH, async ({ request }) => {
      if (!matchesBlob(request, options) || (options.rangesOnly && !request.headers.has('range')))
        return undefined;
      if (seen++ < (options.skip ?? 0)) return undefined;
      const res = await context.next(request);
      if (!res.body || (res.status !== 200 && res.status !== 206)) return res;
      if (options.afterBytes !== undefined) {
        return left.take() ? replaceBody(res, cutStream(res.body, options.afterBytes)) : res;
      }
      const first =
        res.status === 206 ? Number(/bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]) : 0;
      const length = Number(res.headers.get('content-length') ?? Number.NaN);
      const last = Number.isNaN(length) ? Number.POSITIVE_INFINITY : first + length;
      if (options.at >= last || !left.take()) return res;
      return replaceBody(res, cutStream(res.body, Math.max(0, options.at - first)));
    });
}

/**
 * Answers `status` (503 by default) to the first `times` matching requests (default: all), with
 * `Retry-After` if given; afterwards requests go on as normal.
 */
export function statusStorm(
  options: { status?: number; times?: number; retryAfter?: string; path?: RegExp } & BlobMatch,
): Fault {
  const left = budget(options.times ?? Number.POSITIVE_INFINITY);
  return () =>
    mswHttp.all('*', ({ request }) => {
      const path = new URL(request.url).pathname;
      if (options.path && !options.path.test(path)) return undefined;
      if ((options.digest || !options.path) && !matchesBlob(request, options)) return undefined;
      if (!left.take()) return undefined;
      const status = options.status ?? 503;
      return HttpResponse.json(
        { errors: [{ code: 'UNAVAILABLE', message: `stand-in says ${status}` }] },
        { status, headers: options.retryAfter ? { 'retry-after': options.retryAfter } : {} },
      );
    });
}

/**
 * Answers GET manifests/`reference` with a syntactically valid OCI manifest of `size` bytes
 * (padded with an annotation). With `declareLength: false` it is sent chunked, without a length.
 */
export function hugeManifest(options: { reference: string; size: number; declareLength: boolean }): Fault {
  return () =>
    mswHttp.get(MANIFEST_PATH, ({ request }) => {
      const match = MANIFEST_PATH.exec(new URL(request.url).pathname);
      if (match?.[2] !== options.reference) return undefined;
      const doc = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: `sha256:${'0'.repeat(64)}`,
          size: 2,
        },
        layers: [],
        annotations: { padding: '' },
      };
      const base = Buffer.byteLength(JSON.stringify(doc));
      doc.annotations.padding = 'x'.repeat(Math.max(0, options.size - base));
      const bytes = Buffer.from(JSON.stringify(doc));
      const headers = { 'content-type': doc.mediaType };
      if (options.declareLength) {
        return new HttpResponse(bytes, {
          status: 200,
          headers: { ...headers, 'content-length': String(bytes.length) },
        });
      }
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 64 * 1024)
            controller.enqueue(bytes.subarray(i, i + 64 * 1024));
          controller.close();
        },
      });
      return new HttpResponse(stream, { status: 200, headers });
    });
}

/** Serves fixed bytes for one path (e.g. a doctored manifest or config), whatever the upstream holds. */
export function serveBytes(options: { path: string; bytes: Buffer; contentType: string }): Fault {
  return () =>
    mswHttp.get('*', ({ request }) => {
      if (new URL(request.url).pathname !== options.path) return undefined;
      return new HttpResponse(options.bytes, {
        status: 200,
        headers: {
          'content-type': options.contentType,
          'content-length': String(options.bytes.length),
        },
      });
    });
}

export interface Meter {
  /** Manifest GETs counted so far (HEADs never count, as on Docker Hub). */
  readonly counted: number;
  /** Manifest GETs refused with 429. */
  readonly refused: number;
}

/**
 * A registry that meters pulls as Docker Hub does: every manifest GET counts against `limit`, its
 * answer says so in Docker Hub's form (`ratelimit-limit: 100;w=21600`, `ratelimit-remaining:
 * 76;w=21600`), and a GET past the limit is answered 429 with `Retry-After: retryAfter` (and the
 * quota headers at 0). After `refusals` such answers the wait is over and GETs are served again
 * (still counted); without `refusals`, the limit holds for ever.
 */
export function meteredManifests(options: {
  limit: number;
  window?: number;
  retryAfter?: string;
  refusals?: number;
}): { fault: Fault; meter: Meter } {
  const meter = { counted: 0, refused: 0 };
  const window = options.window ?? 21600;
  let used = 0;
  const quota = (left: number) => ({
    'ratelimit-limit': `${options.limit};w=${window}`,
    'ratelimit-remaining': `${left};w=${window}`,
  });
  const fault: Fault = (context) =>
    mswHttp.get(MANIFEST_PATH, async ({ request }) => {
      const waited = options.refusals !== undefined && meter.refused >= options.refusals;
      if (used >= options.limit && !waited) {
        meter.refused++;
        return HttpResponse.json(
          { errors: [{ code: 'TOOMANYREQUESTS', message: 'stand-in: pull rate limit reached' }] },
          {
            status: 429,
            headers: { ...quota(0), ...(options.retryAfter ? { 'retry-after': options.retryAfter } : {}) },
          },
        );
      }
      used++;
      meter.counted++;
      const res = await context.next(request);
      const headers = new Headers(res.headers);
      for (const [name, value] of Object.entries(quota(Math.max(0, options.limit - used))))
        headers.set(name, value);
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    });
  return { fault, meter };
}
