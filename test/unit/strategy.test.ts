// Issue 4: every row and every mode of docs/design.md §5's table, the run-time re-decisions, and determinism.
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { detectLayerFormat } from '../../src/formats/detect.js';
import {
  decideLayer,
  type ImageFacts,
  isViolation,
  type LayerFacts,
  type Mode,
  NO_SAVING_RATIO,
  planPull,
  wantsToc,
} from '../../src/strategy/index.js';

const D = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const SIZE = 1_000_000;

const FORMATS = {
  gzip: detectLayerFormat({
    digest: D(1),
    size: SIZE,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  }),
  tar: detectLayerFormat({ digest: D(1), size: SIZE, mediaType: 'application/vnd.oci.image.layer.v1.tar' }),
  chunked: detectLayerFormat({
    digest: D(1),
    size: SIZE,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
    annotations: {
      'io.github.containers.zstd-chunked.manifest-checksum': D(9),
      'io.github.containers.zstd-chunked.manifest-position': '900000:1000:5000:1',
      'io.github.containers.zstd-chunked.tarsplit-position': '901008:500:3000',
    },
  }),
  legacy: detectLayerFormat({
    digest: D(1),
    size: SIZE,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
    annotations: {
      'io.containers.zstd-chunked.manifest-checksum': D(9),
      'io.containers.zstd-chunked.manifest-position': '900000:1000:5000:1',
    },
  }),
  estargz: detectLayerFormat({
    digest: D(1),
    size: SIZE,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    annotations: { 'containerd.io/snapshot/stargz/toc.digest': D(9) },
  }),
  encrypted: detectLayerFormat({
    digest: D(1),
    size: SIZE,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
  }),
};

const image = (mode: Mode, over: Partial<ImageFacts> = {}): ImageFacts => ({
  manifestKind: 'oci',
  sourceRanges: 'probe',
  mode,
  decryptionKeys: 1,
  ...over,
});
const layer = (format: keyof typeof FORMATS, over: Partial<LayerFacts> = {}): LayerFacts => ({
  index: 0,
  digest: D(1),
  size: SIZE,
  format: FORMATS[format],
  diffID: D(2),
  inStore: false,
  ...over,
});
const GOOD_TOC = { state: 'ok' as const, fetchBytes: 50_000, reuseBytes: SIZE - 50_000 };

/** Each row: facts, and per mode the expected method and reasons, or 'fail' with the codes. */
type Expect = [string, string[]] | ['fail', string[]];
const ROWS: Array<{
  row: string;
  image?: Partial<ImageFacts>;
  layer: LayerFacts;
  auto: Expect;
  full: Expect;
  convertOnly: Expect;
}> = [
  {
    row: 'reused',
    layer: layer('chunked', { inStore: true }),
    auto: ['reuse', ['reused']],
    full: ['reuse', ['reused']],
    convertOnly: ['reuse', ['reused']],
  },
  {
    row: 'partial',
    layer: layer('chunked', { toc: GOOD_TOC }),
    auto: ['partial', []],
    full: ['full', ['mode-full']],
    convertOnly: ['partial', []],
  },
  {
    row: 'not-chunked (gzip)',
    layer: layer('gzip'),
    auto: ['full', ['not-chunked']],
    full: ['full', ['mode-full', 'not-chunked']],
    convertOnly: ['full', ['not-chunked']],
  },
  {
    row: 'not-chunked (tar)',
    layer: layer('tar'),
    auto: ['full', ['not-chunked']],
    full: ['full', ['mode-full', 'not-chunked']],
    convertOnly: ['full', ['not-chunked']],
  },
  {
    row: 'no-tarsplit (older zstd:chunked)',
    layer: layer('legacy'),
    auto: ['full', ['no-tarsplit']],
    full: ['full', ['mode-full', 'no-tarsplit']],
    convertOnly: ['full', ['no-tarsplit']],
  },
  {
    row: 'no-tarsplit (eStargz)',
    layer: layer('estargz'),
    auto: ['full', ['no-tarsplit']],
    full: ['full', ['mode-full', 'no-tarsplit']],
    convertOnly: ['full', ['no-tarsplit']],
  },
  {
    row: 'no-range-support (stream source)',
    image: { sourceRanges: 'no' },
    layer: layer('chunked'),
    auto: ['full', ['no-range-support']],
    full: ['full', ['mode-full', 'no-range-support']],
    convertOnly: ['full', ['no-range-support']],
  },
  {
    row: 'no-range-support (found at run time)',
    layer: layer('chunked', { toc: GOOD_TOC, runtime: { rangesIgnored: true } }),
    auto: ['full', ['no-range-support']],
    full: ['full', ['mode-full', 'no-range-support']],
    convertOnly: ['full', ['no-range-support']],
  },
  {
    row: 'encrypted',
    layer: layer('encrypted'),
    auto: ['full', ['encrypted']],
    full: ['full', ['mode-full', 'encrypted']],
    convertOnly: ['fail', ['encrypted']],
  },
  {
    row: 'schema1',
    image: { manifestKind: 'schema1' },
    layer: layer('gzip', { diffID: undefined }),
    auto: ['full', ['not-chunked', 'schema1']],
    full: ['full', ['mode-full', 'not-chunked', 'schema1']],
    convertOnly: ['fail', ['schema1']],
  },
  {
    row: 'schema1 even when reused',
    image: { manifestKind: 'schema1' },
    layer: layer('gzip', { diffID: undefined, inStore: true }),
    auto: ['reuse', ['reused']],
    full: ['reuse', ['reused']],
    convertOnly: ['fail', ['schema1']],
  },
  {
    row: 'toc-unverifiable (planning)',
    layer: layer('chunked', { toc: { state: 'unverifiable', fetchBytes: 0, reuseBytes: 0 } }),
    auto: ['full', ['toc-unverifiable']],
    full: ['full', ['mode-full', 'toc-unverifiable']],
    convertOnly: ['fail', ['toc-unverifiable']],
  },
  {
    row: 'toc-unverifiable (run time)',
    layer: layer('chunked', { toc: GOOD_TOC, runtime: { tocUnverifiable: 'bad tar-split line' } }),
    auto: ['full', ['toc-unverifiable']],
    full: ['full', ['mode-full', 'toc-unverifiable']],
    convertOnly: ['fail', ['toc-unverifiable']],
  },
  {
    row: 'toc-mismatch',
    layer: layer('chunked', { toc: GOOD_TOC, runtime: { diffIDMismatch: { expected: D(2), actual: D(3) } } }),
    auto: ['full', ['toc-mismatch']],
    full: ['full', ['mode-full', 'toc-mismatch']],
    convertOnly: ['fail', ['toc-mismatch']],
  },
  {
    row: 'no-saving',
    layer: layer('chunked', {
      toc: { state: 'ok', fetchBytes: SIZE * NO_SAVING_RATIO, reuseBytes: SIZE * (1 - NO_SAVING_RATIO) },
    }),
    auto: ['full', ['no-saving']],
    full: ['full', ['mode-full']],
    convertOnly: ['partial', []],
  },
];

describe('the strategy table (docs/design.md §5)', () => {
  for (const r of ROWS) {
    for (const [mode, expected] of [
      ['auto', r.auto],
      ['full', r.full],
      ['convert-only', r.convertOnly],
    ] as const) {
      it(`${r.row}, --mode ${mode} → ${expected[0]} ${expected[1].join(',')}`, () => {
        const outcome = decideLayer(image(mode, r.image), r.layer);
        if (expected[0] === 'fail') {
          expect(isViolation(outcome)).toBe(true);
          expect(outcome).toMatchObject({ kind: 'convert-only', codes: expected[1] });
        } else {
          expect(outcome).toMatchObject({ method: expected[0], reasons: expected[1] });
        }
      });
    }
  }

  it('an encrypted layer without a key fails up front (exit 4), whatever the mode but convert-only', () => {
    for (const mode of ['auto', 'full'] as const) {
      expect(decideLayer(image(mode, { decryptionKeys: 0 }), layer('encrypted'))).toMatchObject({
        kind: 'missing-key',
        codes: ['encrypted'],
      });
    }
    expect(decideLayer(image('convert-only', { decryptionKeys: 0 }), layer('encrypted'))).toMatchObject({
      kind: 'convert-only',
    });
  });

  it('a source that refused several ranges at once keeps the layer partial, one range per request', () => {
    const outcome = decideLayer(
      image('auto'),
      layer('chunked', { toc: GOOD_TOC, runtime: { multiRangeRefused: true } }),
    );
    expect(outcome).toMatchObject({ method: 'partial', reasons: [], rangesPerRequest: 1 });
  });

  it('knows what it fetches and reuses before any body is fetched', () => {
    expect(decideLayer(image('auto'), layer('chunked', { toc: GOOD_TOC }))).toMatchObject({
      fetchBytes: 50_000,
      reuseBytes: SIZE - 50_000,
    });
    expect(decideLayer(image('auto'), layer('gzip'))).toMatchObject({ fetchBytes: SIZE, reuseBytes: 0 });
    expect(decideLayer(image('auto'), layer('gzip', { inStore: true }))).toMatchObject({
      fetchBytes: 0,
      reuseBytes: SIZE,
    });
  });

  it('refuses to plan a partial candidate without its TOC facts (a caller error, said plainly)', () => {
    expect(() => decideLayer(image('auto'), layer('chunked'))).toThrow(/without TOC facts/);
  });

  it('asks for a TOC exactly when a verified one could make the layer partial', () => {
    expect(wantsToc(image('auto'), layer('chunked'))).toBe(true);
    expect(wantsToc(image('convert-only'), layer('chunked'))).toBe(true);
    expect(wantsToc(image('full'), layer('chunked'))).toBe(false);
    expect(wantsToc(image('auto'), layer('chunked', { inStore: true }))).toBe(false);
    expect(wantsToc(image('auto', { sourceRanges: 'no' }), layer('chunked'))).toBe(false);
    for (const f of ['gzip', 'legacy', 'estargz', 'encrypted'] as const)
      expect(wantsToc(image('auto'), layer(f))).toBe(false);
  });

  it('lists every offending layer under convert-only, not just the first', () => {
    const layers = [
      layer('gzip', { index: 0 }),
      layer('encrypted', { index: 1, digest: D(11) }),
      layer('encrypted', { index: 2, digest: D(12) }),
    ];
    const plan = planPull(image('convert-only'), layers);
    expect(plan.violations.map((v) => [v.index, v.codes])).toEqual([
      [1, ['encrypted']],
      [2, ['encrypted']],
    ]);
    expect(plan.layers.map((l) => l.index)).toEqual([0]);
  });

  it('gives the same plan, byte for byte, for the same facts, every time', () => {
    // Rows whose facts include image-level ones are planned in their own images above.
    const layers = ROWS.filter((r) => !r.image).map((r, i) => ({ ...r.layer, index: i }));
    for (const mode of ['auto', 'full', 'convert-only'] as const) {
      const first = JSON.stringify(planPull(image(mode), layers));
      for (let i = 0; i < 50; i++)
        expect(JSON.stringify(planPull(image(mode), structuredClone(layers)))).toBe(first);
    }
  });
});
