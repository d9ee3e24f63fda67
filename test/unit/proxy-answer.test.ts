// Whose 403 is it? A plain-HTTP request goes to the proxy in absolute form, so a proxy's refusal
// arrives as an ordinary answer (docs/network.md "Proxies"); squid's is tested against squid itself
// in test/integration/proxy-tls.test.ts, the other signs here.
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { type ConnectionRoute, proxyAnswerError } from '../../src/registry/network-errors.js';

const route = (
  url: string,
  proxy: string | undefined = 'http://u:secret@proxy.example:3128',
): ConnectionRoute => ({
  url: new URL(url),
  registry: 'registry.example:5000',
  proxy: proxy ? new URL(proxy) : undefined,
  tls: undefined,
  dispatcher: {} as Dispatcher,
});
const api = route('http://registry.example:5000/v2/app/manifests/1');

describe('proxyAnswerError', () => {
  it("an RFC 9209 Proxy-Status with an error is the proxy's", () => {
    const error = proxyAnswerError(
      403,
      { 'proxy-status': 'proxy.example; error=destination_ip_prohibited' },
      api,
    );
    expect(error?.message).toBe(
      'proxy http://u:***@proxy.example:3128 refused the request to registry.example:5000 (HTTP 403, destination_ip_prohibited)',
    );
    expect(error?.exitCode).toBe(5);
  });

  it("a 403 through a proxy (Via) without the registry's Docker-Distribution-Api-Version is the proxy's", () => {
    expect(proxyAnswerError(403, { via: '1.1 proxy.example' }, api)?.message).toContain(
      'refused the request',
    );
  });

  it("the registry's 403, forwarded by the proxy, stays the registry's", () => {
    const headers = { via: '1.1 proxy.example', 'docker-distribution-api-version': 'registry/2.0' };
    expect(proxyAnswerError(403, headers, api)).toBeUndefined();
    // A Proxy-Status entry without an error only says the proxy forwarded the answer.
    expect(proxyAnswerError(403, { ...headers, 'proxy-status': 'proxy.example' }, api)).toBeUndefined();
  });

  it('a storage host or token server behind the same proxy: Via alone does not blame the proxy', () => {
    const storage = route('http://storage.example/blobs/x');
    expect(proxyAnswerError(403, { via: '1.1 proxy.example' }, storage)).toBeUndefined();
  });

  it('407 is always the proxy; nothing is the proxy without one', () => {
    expect(proxyAnswerError(407, {}, api)?.message).toContain('it refused the credentials in $HTTP_PROXY');
    expect(
      proxyAnswerError(403, { 'x-squid-error': 'ERR_ACCESS_DENIED 0' }, { ...api, proxy: undefined }),
    ).toBeUndefined();
  });
});
