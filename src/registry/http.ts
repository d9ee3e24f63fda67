/**
 * The HTTP core every registry operation goes through: scheme choice (loopback and insecure hosts
 * may use plain HTTP), redirects (Authorization never crosses to another host), retries with
 * backoff that honour Retry-After (retry.ts), and mapping of final failures to skiff's exit codes.
 * Connections go through the environment's proxy (proxy.ts) with each registry's TLS settings
 * (certs.ts); a certificate or proxy refusal is said as such and not retried (network-errors.ts).
 */
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { Dispatcher, Agent as UndiciAgent } from 'undici';
import {
  NetworkError,
  NotFoundError,
  SkiffError,
  UnauthorizedError,
  VerificationError,
} from '../errors/index.js';
import { isLoopbackHost } from '../reference/index.js';
import { deferRequire } from '../util/defer-require.js';
import { ConnectionBudget, type Release } from './budget.js';
import { type CertsLocations, type RegistryTls, registryTls } from './certs.js';
import {
  type ConnectionRoute,
  classifyConnectionFailure,
  finalConnectionError,
  networkError,
  proxyAnswerError,
} from './network-errors.js';
import { type ProxyEnvironment, proxyEnvironment, proxyFor } from './proxy.js';
import { type RateLimit, RateLimits } from './rate-limit.js';
import {
  type AttemptProgress,
  DEFAULT_RETRY,
  HttpStatusError,
  RETRIABLE_STATUS,
  type RetryListener,
  type RetryOptions,
  type RetryPolicy,
  type RetrySettings,
  retryAfterMs,
  withRetries,
} from './retry.js';

export type { RateLimit } from './rate-limit.js';
export {
  DEFAULT_RETRY,
  HttpStatusError,
  isRetriableNetworkError,
  type RetryPolicy,
  retryAfterMs,
  sleep,
} from './retry.js';

/**
 * undici's Agent and request API, required from their own modules: the package index also loads
 * fetch, WebSocket, EventSource, caches and mocks, about 110 ms that every skiff command would pay
 * at start-up on a 2-core machine for the two pieces skiff uses. The paths are pinned with undici's
 * version by the lockfile, and every registry test goes through them.
 */
const requireCjs = createRequire(import.meta.url);
// client.js requires client-h2.js when it loads, and with it node:http2 (~15 ms of CPU at every
// start), although skiff never speaks HTTP/2: every Agent here has `allowH2: false`, so undici
// calls client-h2's one export, `connectH2`, only if a TLS handshake chose h2. It loads on first
// use instead (util/defer-require.ts). undici 8.14, pinned by the lockfile: client.js is the only
// module that requires client-h2.js, and client-h2.js exports that one function.
deferRequire(requireCjs, 'undici/lib/dispatcher/client-h2.js');
const Agent = requireCjs('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
const undiciRequest = requireCjs('undici/lib/api/api-request.js') as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions,
) => Promise<Dispatcher.ResponseData>;

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: Method;
  url: URL;
  headers?: Record<string, string>;
  /** Buffers can be re-sent on retry; a stream cannot, so a request with one is tried once. */
  body?: Buffer | Readable | null;
  /** The body carries a credential (a refresh token): a redirect to another origin is refused. */
  credentialBody?: boolean;
  /**
   * The registry the request is made for (default: the URL's host). Its certs.d directory sets
   * TLS for the request, its redirects and its token server, as containers/image does.
   */
  registry?: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  url: URL;
}

const MAX_REDIRECTS = 5;

export interface HttpClientOptions {
  insecure?: boolean;
  /** Hosts allowed plain HTTP and unverified TLS besides `insecure` (registries.conf `insecure`). */
  insecureHost?: (host: string) => boolean;
  retry?: Partial<RetryPolicy>;
  /** Told about every wait before a retry (the CLI prints it on stderr). */
  onRetry?: RetryListener;
  /**
   * The run's connections per registry host (budget.ts), shared with the run's other clients;
   * without one, a budget of `connections` (default 8) of this client's own.
   */
  budget?: ConnectionBudget;
  connections?: number;
  userAgent?: string;
  dispatcher?: Dispatcher;
  /** `--cert-dir` and the certs.d directories (docs/network.md "Certificates"). */
  certs?: CertsLocations;
  /** HTTPS_PROXY, HTTP_PROXY, NO_PROXY (default: read from the environment). */
  proxies?: ProxyEnvironment;
}

/**
 * undici's ProxyAgent, from the package index and only when a proxy is set: the tunnel uses the
 * CONNECT API, which the index installs on undici's dispatchers.
 */
type ProxyAgentClass = typeof import('undici').ProxyAgent;
function ProxyAgent(): ProxyAgentClass {
  return (requireCjs('undici') as typeof import('undici')).ProxyAgent;
}

export class HttpClient {
  readonly retry: RetryPolicy;
  readonly budget: ConnectionBudget;
  private readonly agentSettings: UndiciAgent.Options;
  private readonly proxies: ProxyEnvironment;
  /** One dispatcher per registry TLS profile, TLS policy and proxy, made when first needed. */
  private readonly dispatchers = new Map<string, Dispatcher>();
  private readonly tlsSettings = new Map<string, RegistryTls>();
  private readonly userAgent: string;
  private readonly schemes = new Map<string, Promise<'https' | 'http'>>();
  private readonly limits = new RateLimits();

  constructor(private readonly options: HttpClientOptions = {}) {
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.budget = options.budget ?? new ConnectionBudget(options.connections);
    // A read that waits the stall timeout for a byte (headers or body) fails; the retry policy makes
    // that final. Writing a request body refreshes undici's headers timer, so uploads are not cut.
    this.agentSettings = {
      // The budget keeps requests in flight per host within this; the pool never queues behind it.
      connections: this.budget.perRegistry,
      headersTimeout: this.retry.stallTimeoutMs,
      bodyTimeout: this.retry.stallTimeoutMs,
      connectTimeout: 15_000,
      keepAliveTimeout: 10_000,
      // undici 8 speaks HTTP/2 to TLS servers that offer it. Range requests, multipart answers and
      // `connections` per origin are built and tested on HTTP/1.1 (one request per connection).
      allowH2: false,
    };
    this.proxies = options.proxies ?? proxyEnvironment();
    this.userAgent = options.userAgent ?? 'skiff/0.1';
  }

  /** The policy and the retry listener, for operations that retry outside `send` (resumed bodies). */
  get retrySettings(): RetrySettings {
    return { policy: this.retry, onRetry: this.options.onRetry };
  }

  /** Runs one operation under this client's retry policy (registry/retry.ts). */
  retrying<T>(options: RetryOptions, operation: (progress: AttemptProgress) => Promise<T>): Promise<T> {
    return withRetries(this.retrySettings, options, operation);
  }

  /** The rate limits registries announced (RateLimit-* headers), by registry host. */
  rateLimits(): Record<string, RateLimit> {
    return this.limits.all();
  }

  async close(): Promise<void> {
    const dispatchers = [
      ...this.dispatchers.values(),
      ...(this.options.dispatcher ? [this.options.dispatcher] : []),
    ];
    await Promise.allSettled(dispatchers.map((d) => d.close()));
  }

  /** The base URL of a registry host: https, or http where docs/design.md §2 allows and the host speaks it. */
  baseUrl(host: string): Promise<URL> {
    let scheme = this.schemes.get(host);
    if (!scheme) {
      scheme = this.probeScheme(host);
      this.schemes.set(host, scheme);
      scheme.catch(() => this.schemes.delete(host));
    }
    return scheme.then((s) => new URL(`${s}://${host}/`));
  }

  private async probeScheme(host: string): Promise<'https' | 'http'> {
    const loopback = isLoopbackHost(host);
    if (!loopback && !this.isInsecure(host)) return 'https';
    // Loopback registries are usually plain HTTP; other insecure hosts usually TLS with a self-signed cert.
    const order: Array<'https' | 'http'> = loopback ? ['http', 'https'] : ['https', 'http'];
    let lastError: unknown;
    let route: ConnectionRoute | undefined;
    for (const scheme of order) {
      try {
        route = this.route(new URL(`${scheme}://${host}/`), host);
        const { dispatcher } = route;
        const res = await this.budgeted(host, 'GET', undefined, () =>
          undiciRequest.call(dispatcher, {
            origin: `${scheme}://${host}`,
            path: '/v2/',
            method: 'GET',
            headers: { 'user-agent': this.userAgent },
          }),
        );
        await res.body.dump();
        return scheme;
      } catch (error) {
        if (error instanceof SkiffError) throw error;
        lastError = error;
      }
    }
    throw (
      (route && finalConnectionError(lastError, route)) ??
      networkError(`cannot reach registry ${host}`, lastError)
    );
  }

  /**
   * How a request to `url` made for `registry` travels: through the proxy the environment names
   * for it or directly, with the registry's certs.d settings, verifying TLS unless insecure.
   */
  private route(url: URL, registry: string): ConnectionRoute {
    const https = url.protocol === 'https:';
    const lenient = https && (this.isInsecure(url.host) || isLoopbackHost(url.host));
    const proxy = proxyFor(this.proxies, url);
    const tls = https ? this.tlsFor(registry) : undefined;
    if (this.options.dispatcher) return { url, registry, proxy, tls, dispatcher: this.options.dispatcher };
    const key = JSON.stringify([https ? registry : '', lenient, proxy?.href ?? '']);
    let dispatcher = this.dispatchers.get(key);
    if (!dispatcher) {
      const connect = { ...tls?.options, ...(lenient ? { rejectUnauthorized: false } : {}) };
      const Proxied = proxy && ProxyAgent();
      dispatcher = Proxied
        ? new Proxied({ ...this.agentSettings, uri: proxy.href, requestTls: connect })
        : new Agent({ ...this.agentSettings, connect });
      this.dispatchers.set(key, dispatcher);
    }
    return { url, registry, proxy, tls, dispatcher };
  }

  private tlsFor(registry: string): RegistryTls {
    let settings = this.tlsSettings.get(registry);
    if (!settings) {
      settings = registryTls(registry, this.options.certs);
      this.tlsSettings.set(registry, settings);
    }
    return settings;
  }

  private isInsecure(host: string): boolean {
    return Boolean(this.options.insecure || this.options.insecureHost?.(host));
  }

  /**
   * Sends one request holding one of the run's connections to `host` (budget.ts) until its response
   * has been received whole: its body ended, was destroyed or failed, or it has none.
   */
  private async budgeted(
    host: string,
    method: Method,
    signal: AbortSignal | undefined,
    send: () => Promise<Dispatcher.ResponseData>,
  ): Promise<Dispatcher.ResponseData> {
    const release = await this.budget.connection(host, signal);
    let res: Dispatcher.ResponseData;
    try {
      res = await send();
    } catch (error) {
      release();
      throw error;
    }
    holdUntilReceived(res, method, release);
    return res;
  }

  /**
   * Sends a request, following redirects, retrying what is worth retrying. Returns any response
   * whose status is final (2xx, 3xx without Location, 4xx); the caller owns its body.
   */
  async send(request: HttpRequest, signal?: AbortSignal): Promise<HttpResponse> {
    const replayable = !request.body || Buffer.isBuffer(request.body);
    // The URL being talked to, and how: a failure after a redirect is the redirect target's.
    const at: { url: URL; route?: ConnectionRoute } = { url: request.url };
    // A proxy or certificate failure is said as such (and is final); other failures as they are.
    const final = (e: unknown) => (at.route && finalConnectionError(e, at.route)) ?? toSkiffError(e);
    return this.retrying(
      {
        signal,
        maxFailures: replayable ? undefined : 0,
        step: () => ({ host: at.url.host, final }),
      },
      async () => {
        at.url = request.url;
        at.route = undefined;
        try {
          return await this.sendOnce(request, at, signal);
        } catch (error) {
          throw at.route ? classifyConnectionFailure(error, at.route) : error;
        }
      },
    );
  }

  private async sendOnce(
    request: HttpRequest,
    at: { url: URL; route?: ConnectionRoute },
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const res = await this.sendFollowingRedirects(request, at, signal);
    this.limits.record(request.url.host, res.headers);
    if (RETRIABLE_STATUS.has(res.status)) {
      const detail = await errorDetail(res);
      throw new HttpStatusError(res.status, res.url, detail, retryAfterMs(res.headers['retry-after']));
    }
    return res;
  }

  private async sendFollowingRedirects(
    request: HttpRequest,
    at: { url: URL; route?: ConnectionRoute },
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const registry = request.registry ?? request.url.host;
    let url = request.url;
    let method = request.method;
    let headers: Record<string, string> = { 'user-agent': this.userAgent, ...request.headers };
    let body = request.body ?? null;
    for (let hop = 0; ; hop++) {
      const route = this.route(url, registry);
      at.route = route;
      const res = await this.budgeted(url.host, method, signal, () =>
        undiciRequest.call(route.dispatcher, {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method,
          headers,
          body,
          // undici closes the connection after every HEAD (and says `connection: close`) unless told
          // not to, for servers that answer HEAD with a body; registries do not, and a run's
          // hundreds of HEADs (manifests, blobs, referrers) each paid a TCP connect for it.
          ...(method === 'HEAD' ? { reset: false } : {}),
          ...(signal ? { signal } : {}),
        }),
      );
      const refused = proxyAnswerError(res.statusCode, res.headers, route);
      if (refused) {
        await res.body.dump();
        throw refused;
      }
      const location = res.headers.location;
      if (res.statusCode < 300 || res.statusCode >= 400 || typeof location !== 'string') {
        return { status: res.statusCode, headers: res.headers, body: res.body, url };
      }
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new NetworkError(`too many redirects from ${request.url.host}`);
      const next = new URL(location, url);
      if (next.origin !== url.origin && request.credentialBody && body) {
        throw new UnauthorizedError(
          `${url.host} redirected a request carrying credentials to ${next.host}; skiff does not follow it`,
        );
      }
      if (next.origin !== url.origin) {
        // Credentials for one host must never reach another (docs/design.md §2).
        headers = Object.fromEntries(
          Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'),
        );
      }
      if (
        res.statusCode === 303 ||
        ((res.statusCode === 301 || res.statusCode === 302) && method !== 'HEAD')
      ) {
        if (method !== 'GET') body = null;
        method = method === 'HEAD' ? 'HEAD' : 'GET';
      }
      url = next;
      at.url = url;
    }
  }
}

/**
 * A response without a body is received with its headers; another one when its body ends, fails or
 * is destroyed (callers consume or dump every body they are given).
 */
function holdUntilReceived(res: Dispatcher.ResponseData, method: Method, release: Release): void {
  const length = res.headers['content-length'];
  if (method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304 || length === '0') {
    release();
    return;
  }
  res.body.once('end', release);
  res.body.once('close', release);
  res.body.once('error', release);
}

/** The distribution API's error JSON, condensed to one line (never includes request headers). */
export async function errorDetail(res: HttpResponse): Promise<string> {
  let text = '';
  try {
    text = (await res.body.text()).slice(0, 4096);
  } catch {
    return '';
  }
  try {
    const json = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (Array.isArray(json.errors) && json.errors.length > 0) {
      return json.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

export function toSkiffError(error: unknown): SkiffError {
  if (error instanceof SkiffError) return error;
  if (error instanceof HttpStatusError) return statusToSkiffError(error.status, error.message);
  return networkError('network failure', error);
}

export function statusToSkiffError(status: number, message: string): SkiffError {
  if (status === 401 || status === 403) return new UnauthorizedError(message);
  if (status === 404) return new NotFoundError(message);
  if (status === 416) return new VerificationError(message);
  if (status >= 500 || status === 408 || status === 429 || status === 425)
    return new NetworkError(`${message} (after retries)`);
  return new NetworkError(message);
}

export function headerValue(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
