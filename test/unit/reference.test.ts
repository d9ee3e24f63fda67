import { describe, expect, it } from 'vitest';
import { formatReference, inStore, parseReference } from '../../src/reference/index.js';

describe('parseReference: transports', () => {
  it('a mistyped scheme is an unknown transport, not a registry host with a bad port', () => {
    for (const [text, transport] of [
      ['htp://127.0.0.1:5000/app:v1', 'htp'],
      ['https://quay.io/org/app', 'https'],
      ['dokcer://quay.io/org/app', 'dokcer'],
    ]) {
      expect(() => parseReference(text!)).toThrow(`unknown transport "${transport}:"`);
    }
  });

  it('registry hosts with ports and the known transports still parse', () => {
    expect(parseReference('127.0.0.1:5000/app:v1')).toMatchObject({ registry: '127.0.0.1:5000', tag: 'v1' });
    expect(parseReference('docker://localhost:5000/app')).toMatchObject({ registry: 'localhost:5000' });
    expect(parseReference('oci:./layout:v1')).toMatchObject({ transport: 'oci', tag: 'v1' });
  });
});

describe('parseReference: store:', () => {
  it('names an image in the default store, or in the store at [ROOT]', () => {
    expect(parseReference('store:alpine:3.20')).toEqual({ transport: 'store', image: 'alpine:3.20' });
    expect(parseReference(`store:[/var/s]quay.io/org/app@sha256:${'a'.repeat(64)}`)).toEqual({
      transport: 'store',
      root: '/var/s',
      image: `quay.io/org/app@sha256:${'a'.repeat(64)}`,
    });
    expect(formatReference(parseReference('store:[/var/s]app:v1'))).toBe('store:[/var/s]app:v1');
    expect(inStore({ transport: 'store', image: 'app' }, '/x')).toEqual({
      transport: 'store',
      root: '/x',
      image: 'app',
    });
  });

  it('refuses an empty image or an unclosed store path; a registry host "store" with a port stays one', () => {
    expect(() => parseReference('store:')).toThrow('missing image name or digest');
    expect(() => parseReference('store:[/var/s')).toThrow('without "]"');
    expect(parseReference('store:5000/app')).toMatchObject({ transport: 'docker', registry: 'store:5000' });
  });
});
