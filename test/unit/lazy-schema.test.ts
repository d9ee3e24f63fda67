// util/lazy-schema.ts: a schema module's schemas are built on first use, not when it loads, and
// stand in for the schema everywhere zod meets them (docs/performance.md "Start-up").
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DescriptorSchema, IndexSchema, parseDocument } from '../../src/manifest/schemas.js';
import { lazySchema } from '../../src/util/lazy-schema.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('lazySchema', () => {
  it('builds the schema on first use, once', () => {
    let builds = 0;
    const Name = lazySchema(() => {
      builds++;
      return z.string().min(2);
    });
    expect(builds).toBe(0);
    expect(Name.parse('ok')).toBe('ok');
    expect(Name.safeParse('x').success).toBe(false);
    expect(builds).toBe(1);
  });

  it('validates inside other schemas, optional and in arrays, as the schema itself would', () => {
    const Digest = lazySchema(() => z.string().regex(/^sha256:[a-f0-9]{64}$/, 'not a digest'));
    const eager = z.object({
      layers: z.array(z.object({ digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, 'not a digest') })),
    });
    const lazy = z.object({ layers: z.array(z.object({ digest: Digest })), subject: Digest.optional() });
    const bad = { layers: [{ digest: DIGEST }, { digest: 'sha256:0' }] };
    expect(lazy.safeParse(bad).error?.issues).toEqual(eager.safeParse(bad).error?.issues);
    expect(lazy.parse({ layers: [{ digest: DIGEST }] })).toEqual({ layers: [{ digest: DIGEST }] });
    expect(Digest instanceof z.ZodType).toBe(true);
  });
});

describe('the manifest schemas, built lazily', () => {
  it('name the field of the first issue, as before', () => {
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'x', digest: 'sha256:0', size: 1 }] };
    expect(() => parseDocument(IndexSchema, JSON.stringify(index), 'index')).toThrow(
      'index: field manifests[0].digest: not a sha256 digest',
    );
    const descriptor = {
      mediaType: 'x',
      digest: DIGEST,
      size: 3,
      platform: { architecture: 'amd64', os: 'linux' },
    };
    expect(DescriptorSchema.parse(descriptor)).toEqual(descriptor);
  });
});
