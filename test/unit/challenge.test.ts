import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from '../../src/registry/challenge.js';

describe('WWW-Authenticate parsing', () => {
  it('reads a Docker Hub style Bearer challenge with commas inside quotes', () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"',
    );
    expect(c).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/alpine:pull,push',
      },
    });
  });

  it('reads repeated headers, escaped quotes and unquoted values', () => {
    const cs = parseWwwAuthenticate([
      'Basic realm="skiff \\"test\\""',
      'Bearer realm=x, error="insufficient_scope"',
    ]);
    expect(cs).toEqual([
      { scheme: 'basic', params: { realm: 'skiff "test"' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'insufficient_scope' } },
    ]);
  });

  it('returns nothing for an absent header', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
});
