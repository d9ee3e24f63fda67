/**
 * Failures of the connection itself, said as the user can act on them: a certificate check that
 * failed (which host, which check, where skiff looked for CAs) and a proxy that refused or dropped
 * the tunnel (named, its password never shown). Both are exit 5; a certificate failure and a
 * proxy's refusal are final at once, since retrying cannot change them.
 */
import type { Dispatcher } from 'undici';
import { CertificateError, NetworkError, SkiffError } from '../errors/index.js';
import type { RegistryTls } from './certs.js';
import { redactProxy } from './proxy.js';
import { HttpStatusError } from './retry.js';

/** How one request travelled: the URL, the registry it was for, the proxy, the TLS settings. */
export interface ConnectionRoute {
  url: URL;
  registry: string;
  proxy: URL | undefined;
  tls: RegistryTls | undefined;
  dispatcher: Dispatcher;
}

/** Node's (OpenSSL's) verification codes for a server certificate, as the user reads them. */
const SERVER_CHECKS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'it is signed by an unknown certificate authority',
  UNABLE_TO_GET_ISSUER_CERT: 'it is signed by an unknown certificate authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'it is signed by an unknown certificate authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'it is signed by an unknown certificate authority',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed and not trusted',
  CERT_UNTRUSTED: 'it is not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'it is not issued for this host name',
  CERT_HAS_EXPIRED: 'it has expired',
  CERT_NOT_YET_VALID: 'it is not valid yet',
  CERT_REVOKED: 'it is revoked',
  CERT_SIGNATURE_FAILURE: 'its signature does not verify',
  INVALID_CA: 'an issuer in its chain is not a CA',
  INVALID_PURPOSE: 'it is not for TLS servers',
  CERT_CHAIN_TOO_LONG: 'its chain is too long',
  PATH_LENGTH_EXCEEDED: 'its chain is too long',
};

/**
 * TLS alerts a server sends about the client's certificate (none, or one it does not accept), by
 * the tail of OpenSSL's code: `ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE`, `ERR_SSL_TLSV13_ALERT_…`.
 */
const CLIENT_CERT_ALERTS: Record<string, string> = {
  CERTIFICATE_REQUIRED: 'certificate required',
  BAD_CERTIFICATE: 'bad certificate',
  UNKNOWN_CA: 'unknown CA',
  CERTIFICATE_UNKNOWN: 'certificate unknown',
  UNSUPPORTED_CERTIFICATE: 'unsupported certificate',
  CERTIFICATE_EXPIRED: 'certificate expired',
  CERTIFICATE_REVOKED: 'certificate revoked',
  ACCESS_DENIED: 'access denied',
};

function clientCertAlert(code: string): string | undefined {
  const alert = /^ERR_SSL_.*_ALERT_([A-Z_]+)$/.exec(code)?.[1];
  return alert ? CLIENT_CERT_ALERTS[alert] : undefined;
}

/** Codes meaning skiff never reached the proxy; any other failure through it is a dropped tunnel. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * A failure that retrying cannot mend, as its SkiffError (a certificate check, a proxy's answer
 * to CONNECT); anything else is returned as it is, for the retry policy to judge.
 */
export function classifyConnectionFailure(error: unknown, route: ConnectionRoute): unknown {
  const code = findCode(error, (c) => c in SERVER_CHECKS || clientCertAlert(c) !== undefined);
  if (code) return certificateError(code, error, route);
  const refusal = proxyRefusal(error);
  if (refusal && route.proxy) {
    return new NetworkError(
      `proxy ${redactProxy(route.proxy)} refused the ${route.url.protocol === 'https:' ? 'tunnel' : 'request'} to ${route.url.host} (HTTP ${refusal.status})${credentialsHint(refusal.status, route)}`,
      {},
      error,
    );
  }
  return error;
}

/** What a 407 asks of the user: credentials in the proxy variable, or other ones. */
function credentialsHint(status: number, route: ConnectionRoute): string {
  if (status !== 407 || !route.proxy) return '';
  const setting = route.url.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  return route.proxy.username
    ? `: it refused the credentials in $${setting}`
    : `: it asks for credentials; give them in $${setting} (http://USER:PASSWORD@HOST:PORT)`;
}

type Headers = Record<string, string | string[] | undefined>;
const header = (headers: Headers, name: string) => {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

/**
 * A plain-HTTP request travels to the proxy in absolute form, so the proxy's own refusal comes
 * back as an ordinary response, not as a failed CONNECT. 407 is always the proxy's. A 403 is the
 * proxy's when it says so: squid's `X-Squid-Error`, an RFC 9209 `Proxy-Status` with an `error`;
 * or, for a request to the registry's API, when it came through a proxy (`Via`) without the
 * `Docker-Distribution-Api-Version` every distribution answer carries. Such an answer is the
 * proxy's decision: exit 5 naming the proxy, not retried, never taken for the registry's "no".
 */
export function proxyAnswerError(
  status: number,
  headers: Headers,
  route: ConnectionRoute,
): NetworkError | undefined {
  if (!route.proxy || (status !== 403 && status !== 407)) return undefined;
  const squidError = header(headers, 'x-squid-error')?.split(' ')[0];
  const proxyStatus = header(headers, 'proxy-status');
  const proxyError = proxyStatus && /;\s*error\s*=\s*"?([\w-]+)/i.exec(proxyStatus)?.[1];
  const registryApi = route.url.host === route.registry && route.url.pathname.startsWith('/v2/');
  const unsigned =
    registryApi &&
    header(headers, 'via') !== undefined &&
    header(headers, 'docker-distribution-api-version') === undefined;
  if (status === 403 && !squidError && !proxyError && !unsigned) return undefined;
  const said =
    squidError ??
    proxyError ??
    (status === 403 ? 'no Docker-Distribution-Api-Version: not the registry' : '');
  return new NetworkError(
    `proxy ${redactProxy(route.proxy)} refused the request to ${route.url.host} (HTTP ${status}${said ? `, ${said}` : ''})${credentialsHint(status, route)}`,
  );
}

/**
 * The error a failure ends in after the retries when the route has something to say about it
 * (a certificate, a proxy); undefined to leave it to the HTTP layer's mapping.
 */
export function finalConnectionError(error: unknown, route: ConnectionRoute): SkiffError | undefined {
  const classified = classifyConnectionFailure(error, route);
  if (classified !== error) return classified as SkiffError;
  if (!route.proxy || error instanceof SkiffError || error instanceof HttpStatusError) return undefined;
  const proxy = redactProxy(route.proxy);
  return findCode(error, (c) => UNREACHABLE.has(c))
    ? networkError(`cannot reach proxy ${proxy} (for ${route.url.host})`, error)
    : networkError(`the connection to ${route.url.host} through proxy ${proxy} failed`, error);
}

/** A network failure with its cause's words and code: `what: ECONNRESET read ECONNRESET`. */
export function networkError(what: string, cause: unknown): NetworkError {
  const detail =
    cause instanceof Error
      ? cause.cause instanceof Error
        ? cause.cause.message
        : cause.message
      : String(cause);
  const code = (cause as { code?: string } | undefined)?.code;
  return new NetworkError(`${what}: ${code && !detail.includes(code) ? `${code} ` : ''}${detail}`, {}, cause);
}

function certificateError(code: string, error: unknown, route: ConnectionRoute): CertificateError {
  const host = route.url.host;
  const forRegistry = route.registry !== host ? ` (for registry ${route.registry})` : '';
  const tls = route.tls;
  const clientFiles = tls?.clientCertFiles ?? [];
  const alert = clientCertAlert(code);
  if (alert) {
    const message =
      clientFiles.length === 0
        ? `${host}${forRegistry} requires a TLS client certificate and skiff has none for it (${alert}); ${lookedIn(tls, 'NAME.cert with NAME.key')}`
        : `${host}${forRegistry} rejected the TLS client certificate ${clientFiles.join(', ')} (${alert})`;
    return new CertificateError(message, {}, error);
  }
  const reason = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? altnameReason(error) : code;
  return new CertificateError(
    `the TLS certificate of ${host}${forRegistry} failed verification: ${SERVER_CHECKS[code]} (${reason}); CAs: ${trustedCas(tls)}`,
    {},
    error,
  );
}

/** Which CAs skiff trusted, and where it looked for more. */
function trustedCas(tls: RegistryTls | undefined): string {
  const extra = process.env.NODE_EXTRA_CA_CERTS
    ? ` and $NODE_EXTRA_CA_CERTS (${process.env.NODE_EXTRA_CA_CERTS})`
    : '';
  const roots = `Node's default roots${extra}`;
  if (!tls) return roots;
  if (tls.caFiles.length > 0) return `${roots} and ${tls.caFiles.join(', ')}`;
  return `${roots} only; ${lookedIn(tls, '*.crt')}`;
}

function lookedIn(tls: RegistryTls | undefined, what: string): string {
  if (!tls) return 'no certs.d directory applies';
  if (tls.dir) return `${tls.dir} holds no ${what}`;
  return `skiff looked for ${what} in ${tls.searched.join(', ')} (none exists)`;
}

function altnameReason(error: unknown): string {
  for (let e = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const reason = (e as { reason?: unknown }).reason;
    if (typeof reason === 'string') return reason;
  }
  return 'ERR_TLS_CERT_ALTNAME_INVALID';
}

/** undici's message for a CONNECT answered with anything but 200 (pinned by the lockfile). */
function proxyRefusal(error: unknown): { status: number } | undefined {
  for (let e = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const message = (e as Error).message ?? '';
    const tunnel = /Proxy response \((\d{3})\) !== 200/.exec(message);
    if (tunnel) return { status: Number(tunnel[1]) };
    if (/Proxy Authentication Required \(407\)/.test(message)) return { status: 407 };
  }
  return undefined;
}

function findCode(error: unknown, wanted: (code: string) => boolean): string | undefined {
  for (let e = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && wanted(code)) return code;
  }
  return undefined;
}
