/**
 * Which proxy a request goes through, read from the environment as Go's net/http reads it
 * (golang.org/x/net/http/httpproxy, what skopeo and podman use): `HTTPS_PROXY` for https URLs and
 * `HTTP_PROXY` for http URLs, never one for the other; upper case before lower case; `NO_PROXY`
 * entries separated by commas; loopback hosts never proxied. docs/network.md lists where this
 * differs from curl and from undici's EnvHttpProxyAgent.
 */
import { BlockList, isIP } from 'node:net';
import { UsageError } from '../errors/index.js';

export type Env = Record<string, string | undefined>;

export interface ProxyEnvironment {
  /** `HTTP_PROXY`, for http:// URLs. */
  http: URL | undefined;
  /** `HTTPS_PROXY`, for https:// URLs. */
  https: URL | undefined;
  noProxy: NoProxy;
}

const PROXY_SCHEMES = new Set(['http:', 'https:', 'socks5:']);

/** The first non-empty of the names, as Go's getEnvAny: upper case wins over lower case. */
function envAny(env: Env, ...names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value) return { name, value };
  }
  return undefined;
}

export function proxyEnvironment(env: Env = process.env): ProxyEnvironment {
  return {
    http: parseProxy(envAny(env, 'HTTP_PROXY', 'http_proxy')),
    https: parseProxy(envAny(env, 'HTTPS_PROXY', 'https_proxy')),
    noProxy: new NoProxy(envAny(env, 'NO_PROXY', 'no_proxy')?.value ?? ''),
  };
}

/** A proxy address; without a scheme (`proxy:3128`) it is http://, as Go and curl read it. */
function parseProxy(setting: { name: string; value: string } | undefined): URL | undefined {
  if (!setting) return undefined;
  const value = setting.value.trim();
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // no scheme: tried as http:// below
  }
  if (!url?.host) {
    try {
      url = new URL(`http://${value}`);
    } catch {
      throw new UsageError(`$${setting.name} is not a proxy address: ${redactProxyText(value)}`);
    }
  }
  if (!PROXY_SCHEMES.has(url.protocol))
    throw new UsageError(
      `$${setting.name} names a ${url.protocol.slice(0, -1)} proxy (${redactProxy(url)}); skiff speaks to http, https and socks5 proxies`,
    );
  return url;
}

/** The proxy for a URL, or undefined to connect directly. */
export function proxyFor(environment: ProxyEnvironment, url: URL): URL | undefined {
  const proxy =
    url.protocol === 'https:' ? environment.https : url.protocol === 'http:' ? environment.http : undefined;
  return proxy && environment.noProxy.useProxy(url) ? proxy : undefined;
}

/** A proxy URL fit to print: the password (and a username alone) never appear. */
export function redactProxy(url: URL): string {
  if (!url.username && !url.password) return url.origin === 'null' ? url.href : `${url.origin}`;
  return `${url.protocol}//${url.username ? `${url.username}:***@` : '***@'}${url.host}`;
}

function redactProxyText(text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//***@');
}

interface DomainMatch {
  /** With a leading dot: `.example.com`. */
  suffix: string;
  /** Also the name itself (`example.com` matches it and its subdomains; `.example.com` only subdomains). */
  matchHost: boolean;
  port: string;
}

/**
 * NO_PROXY as Go's httpproxy reads it: comma-separated; `*` alone bypasses every host;
 * `example.com` matches the name and its subdomains, `.example.com` and `*.example.com` only the
 * subdomains; `HOST:PORT` only that port; IP addresses and CIDR blocks (`10.0.0.0/8`) match IP
 * literals only (names are not resolved to compare).
 */
export class NoProxy {
  private readonly all: boolean = false;
  private readonly domains: DomainMatch[] = [];
  private readonly addresses: Array<{ list: BlockList; port: string }> = [];

  constructor(value: string) {
    for (const raw of value.split(',')) {
      const entry = raw.trim().toLowerCase();
      if (!entry) continue;
      if (entry === '*') {
        this.all = true;
        return;
      }
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
      const cidrFamily = cidr ? isIP(cidr[1]!) : 0;
      if (cidr && cidrFamily) {
        const list = new BlockList();
        list.addSubnet(cidr[1]!, Number(cidr[2]), cidrFamily === 6 ? 'ipv6' : 'ipv4');
        this.addresses.push({ list, port: '' });
        continue;
      }
      let { host, port } = splitHostPort(entry) ?? { host: entry, port: '' };
      host = host.replace(/^\[(.*)\]$/, '$1');
      const family = isIP(host);
      if (family) {
        const list = new BlockList();
        list.addAddress(host, family === 6 ? 'ipv6' : 'ipv4');
        this.addresses.push({ list, port });
        continue;
      }
      if (!host) continue;
      if (host.startsWith('*.')) host = host.slice(1);
      const matchHost = !host.startsWith('.');
      this.domains.push({ suffix: matchHost ? `.${host}` : host, matchHost, port });
    }
  }

  /** Whether a request to this URL goes through the proxy. */
  useProxy(url: URL): boolean {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    if (host === 'localhost') return false;
    const family = isIP(host);
    if (family && isLoopbackAddress(host)) return false;
    if (this.all) return false;
    const portMatches = (want: string) => want === '' || want === port;
    if (family) {
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (this.addresses.some((a) => a.list.check(host, type) && portMatches(a.port))) return false;
    }
    return !this.domains.some(
      (d) => (host.endsWith(d.suffix) || (d.matchHost && host === d.suffix.slice(1))) && portMatches(d.port),
    );
  }
}

function isLoopbackAddress(ip: string): boolean {
  return /^127\./.test(ip) || ip === '::1' || /^::ffff:127\./.test(ip);
}

/** Go's net.SplitHostPort for the entries it accepts: `host:port`, `[v6]:port`; undefined otherwise. */
function splitHostPort(entry: string): { host: string; port: string } | undefined {
  const bracketed = /^\[([^\]]*)\]:(\d*)$/.exec(entry);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2]! };
  const colon = entry.lastIndexOf(':');
  if (colon < 0 || entry.indexOf(':') !== colon) return undefined;
  return { host: entry.slice(0, colon), port: entry.slice(colon + 1) };
}
