// Proxy selection from the environment, checked against the tables of Go's
// golang.org/x/net/http/httpproxy tests (what skopeo and podman do), and where undici's
// EnvHttpProxyAgent would answer otherwise.
import { describe, expect, it } from 'vitest';
import { proxyEnvironment, proxyFor, redactProxy } from '../../src/registry/proxy.js';

const chosen = (env: Record<string, string>, url: string) =>
  proxyFor(proxyEnvironment(env), new URL(url))?.href.replace(/\/$/, '') ?? null;

describe('HTTP_PROXY and HTTPS_PROXY', () => {
  it.each([
    ['127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['cache.corp.example.com:1234', 'http://cache.corp.example.com:1234'],
    ['cache.corp.example.com', 'http://cache.corp.example.com'],
    ['https://cache.corp.example.com', 'https://cache.corp.example.com'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['https://127.0.0.1:8080', 'https://127.0.0.1:8080'],
  ])('HTTP_PROXY=%s is %s', (setting, proxy) => {
    expect(chosen({ HTTP_PROXY: setting }, 'http://example.com/')).toBe(proxy);
  });

  it('each scheme has its own proxy, and https never falls back to HTTP_PROXY (undici would)', () => {
    const env = { HTTP_PROXY: 'http.proxy.tld', HTTPS_PROXY: 'secure.proxy.tld' };
    expect(chosen(env, 'http://insecure.tld/')).toBe('http://http.proxy.tld');
    expect(chosen(env, 'https://secure.tld/')).toBe('http://secure.proxy.tld');
    expect(chosen({ HTTP_PROXY: 'http.proxy.tld' }, 'https://secure.tld/')).toBeNull();
  });

  it('upper case wins over lower case, as in Go; lower case alone works', () => {
    expect(chosen({ HTTPS_PROXY: 'upper:1', https_proxy: 'lower:2' }, 'https://r.example/')).toBe(
      'http://upper:1',
    );
    expect(chosen({ https_proxy: 'lower:2' }, 'https://r.example/')).toBe('http://lower:2');
    expect(
      chosen({ HTTPS_PROXY: 'p:1', NO_PROXY: '', no_proxy: 'r.example' }, 'https://r.example/'),
    ).toBeNull();
  });

  it('a proxy scheme skiff cannot speak is a usage error naming the variable', () => {
    expect(() => proxyEnvironment({ HTTPS_PROXY: 'ftp://p.example:21' })).toThrow(
      /\$HTTPS_PROXY names a ftp proxy/,
    );
  });

  it('credentials never appear when a proxy is named', () => {
    expect(redactProxy(new URL('http://alice:s3cret@proxy.example:3128'))).toBe(
      'http://alice:***@proxy.example:3128',
    );
    expect(redactProxy(new URL('http://proxy.example:3128'))).toBe('http://proxy.example:3128');
  });
});

describe('NO_PROXY', () => {
  const NO_PROXY =
    'foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, 10.0.0.0/30, 2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, 2002:db8:a::45/64';
  // Go's UseProxyTests: whether http://HOST/ (port 80) goes through the proxy.
  it.each([
    ['localhost', false],
    ['127.0.0.1', false],
    ['127.0.0.2', false],
    ['[::1]', false],
    ['[::2]', true],
    ['192.168.1.1', false],
    ['192.168.1.2', true],
    ['192.168.1.3', false],
    ['10.0.0.2', false],
    ['[2001:db8::52:0:1]', false],
    ['[2001:db8::52:0:2]', true],
    ['[2001:db8::52:0:3]', false],
    ['[2002:db8:a::123]', false],
    ['[fe80::424b:c8be:1643:a1b6]', true],
    ['barbaz.net', true],
    ['www.barbaz.net', false],
    ['foobar.com', false],
    ['www.foobar.com', false],
    ['foofoobar.com', true],
    ['baz.com', true],
    ['localhost.net', true],
    ['local.localhost', true],
    ['barbarbaz.net', true],
    ['wildcard.io', true],
    ['nested.wildcard.io', false],
    ['awildcard.io', true],
  ])('%s proxied: %s', (host, proxied) => {
    const env = { HTTP_PROXY: 'proxy:3128', NO_PROXY };
    expect(chosen(env, `http://${host}/`) !== null).toBe(proxied);
  });

  it('`*` anywhere bypasses every host', () => {
    expect(chosen({ HTTPS_PROXY: 'p:1', NO_PROXY: 'a.example, *' }, 'https://r.example/')).toBeNull();
  });

  it('HOST:PORT bypasses only that port; the default port counts', () => {
    const env = { HTTPS_PROXY: 'p:1', NO_PROXY: 'r.example:5000,s.example:443' };
    expect(chosen(env, 'https://r.example:5000/')).toBeNull();
    expect(chosen(env, 'https://r.example/')).toBe('http://p:1');
    expect(chosen(env, 'https://s.example/')).toBeNull();
  });

  it('a leading dot matches subdomains only (undici would match the name itself too)', () => {
    const env = { HTTPS_PROXY: 'p:1', NO_PROXY: '.example.com' };
    expect(chosen(env, 'https://example.com/')).toBe('http://p:1');
    expect(chosen(env, 'https://r.example.com/')).toBeNull();
  });

  it('entries are separated by commas only, with spaces around them ignored', () => {
    expect(
      chosen({ HTTPS_PROXY: 'p:1', NO_PROXY: ' a.example ,  r.example ' }, 'https://r.example/'),
    ).toBeNull();
  });

  it('CIDR blocks match IP literals, never names', () => {
    const env = { HTTPS_PROXY: 'p:1', NO_PROXY: '10.0.0.0/8' };
    expect(chosen(env, 'https://10.1.2.3/')).toBeNull();
    expect(chosen(env, 'https://11.1.2.3/')).toBe('http://p:1');
    expect(chosen(env, 'https://ten.example/')).toBe('http://p:1');
  });
});
