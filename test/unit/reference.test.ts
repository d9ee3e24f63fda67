import { describe, expect, it } from 'vitest';
import { parseReference } from '../../src/reference/index.js';

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
