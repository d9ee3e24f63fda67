// Issue 4: every row and every mode of docs/design.md §5's table, the run-time re-decisions, and determinism.
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { detectLayerFormat } from '../../src/formats/detect.js';
import {
  type BlobFacts,
  type CopyLayerFacts,
  decideBlob,
  decideCopyLayer,
  decideSchema1Layer,
  layersToEncrypt,
} from '../../src/strategy/copy.js';
import {
  decideLayer,
  type ImageFacts,
  isViolation,
  type LayerFacts,
  type Mode,
  NO_SAVING_RATIO,
  planPull,
  STORE_CAPABILITIES,
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

// Issue 12: the plan follows what the destination can do; the store can do everything.
describe("the destination's capabilities", () => {
  const wholeOnly = { ...STORE_CAPABILITIES, partialCommits: false };

  it('plans a chunked layer in full, saying so, for a destination that commits whole layers only', () => {
    const facts = layer('chunked', { toc: GOOD_TOC });
    expect(decideLayer(image('auto'), facts)).toMatchObject({ method: 'partial' });
    expect(decideLayer(image('auto', { destination: wholeOnly }), facts)).toMatchObject({
      method: 'full',
      reasons: ['destination-whole'],
    });
    expect(wantsToc(image('auto', { destination: wholeOnly }), layer('chunked'))).toBe(false);
    const refused = decideLayer(image('convert-only', { destination: wholeOnly }), facts);
    expect(refused).toMatchObject({ kind: 'convert-only', codes: ['destination-whole'] });
  });

  it('reuses a held layer only where the destination reuses by DiffID', () => {
    const held = layer('gzip', { inStore: true });
    expect(decideLayer(image('auto'), held)).toMatchObject({ method: 'reuse' });
    expect(
      decideLayer(image('auto', { destination: { ...STORE_CAPABILITIES, reuseByDiffID: false } }), held),
    ).toMatchObject({ method: 'full', reasons: ['not-chunked'] });
  });
});

// Issue 12: mirror's per-layer actions and blob moves are decided here, from what the destination
// can do, never by the copy engine (it used to plan layers itself and throw).
describe('the copy strategy (blob destinations)', () => {
  const copyLayer = (over: Partial<CopyLayerFacts> = {}): CopyLayerFacts => ({
    digest: D(1),
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    encrypted: false,
    zstdChunked: false,
    foreign: false,
    ...over,
  });
  const asIs = { layers: 'as-is' } as const;
  const archive = { layers: 'uncompressed' } as const;

  it('copies every layer as it is when nothing asks for a change', () => {
    expect(decideCopyLayer(copyLayer(), asIs, undefined)).toEqual({ action: 'copy', reasons: ['as-is'] });
    expect(decideCopyLayer(copyLayer({ encrypted: true }), asIs, undefined).action).toBe('copy');
  });

  it('converts to the target asked for, unless the layer is in that form already', () => {
    expect(decideCopyLayer(copyLayer(), asIs, 'zstd')).toEqual({
      action: 'convert',
      to: 'zstd',
      from: 'gzip',
      reasons: ['convert-requested'],
    });
    expect(decideCopyLayer(copyLayer(), asIs, 'gzip')).toEqual({
      action: 'copy',
      reasons: ['already-in-form'],
    });
    const zstd = copyLayer({ compression: 'zstd' });
    expect(decideCopyLayer(zstd, asIs, 'zstd:chunked').action).toBe('convert');
    expect(decideCopyLayer({ ...zstd, zstdChunked: true }, asIs, 'zstd:chunked').reasons).toEqual([
      'already-in-form',
    ]);
  });

  it('keeps encrypted layers and non-layer blobs as they are, with a note, under --convert', () => {
    const encrypted = decideCopyLayer(copyLayer({ encrypted: true }), asIs, 'zstd');
    expect(encrypted).toMatchObject({ action: 'copy', reasons: ['encrypted-kept'] });
    expect(encrypted).toHaveProperty('note', 'encrypted layers copied as they are, not converted');
    const other = decideCopyLayer(copyLayer({ compression: undefined, mediaType: 'x/y' }), asIs, 'zstd');
    expect(other).toMatchObject({
      action: 'copy',
      reasons: ['not-a-layer'],
      note: 'x/y copied as it is (not a layer)',
    });
  });

  it('encrypts layers when --encryption-key selects them: plain ones only, never into a docker archive', () => {
    expect(decideCopyLayer(copyLayer(), asIs, undefined, true)).toEqual({
      action: 'encrypt',
      reasons: ['encrypt-requested'],
    });
    expect(decideCopyLayer(copyLayer({ compression: 'none' }), asIs, undefined, true).action).toBe('encrypt');
    const kept = decideCopyLayer(copyLayer({ encrypted: true }), asIs, undefined, true);
    expect(kept).toMatchObject({ action: 'copy', reasons: ['encrypted-kept'] });
    expect(kept).toHaveProperty('note', 'already-encrypted layers copied as they are, not encrypted again');
    expect(decideCopyLayer(copyLayer({ compression: undefined }), asIs, undefined, true).action).toBe('copy');
    expect(decideCopyLayer(copyLayer({ foreign: true }), asIs, undefined, true).action).toBe('reference');
    expect(decideCopyLayer(copyLayer(), archive, undefined, true)).toMatchObject({
      action: 'refuse',
      reasons: ['encrypt-requested'],
    });
    // Not selected by --encrypt-layer: as without a key.
    expect(decideCopyLayer(copyLayer(), asIs, undefined, false)).toEqual({
      action: 'copy',
      reasons: ['as-is'],
    });
  });

  it('selects layers for --encrypt-layer as skopeo does: all by default, negative from the end, out of range refused', () => {
    expect(layersToEncrypt(3, undefined)).toEqual({ encrypt: [true, true, true] });
    expect(layersToEncrypt(3, [])).toEqual({ encrypt: [true, true, true] });
    expect(layersToEncrypt(3, [-1])).toEqual({ encrypt: [false, false, true] });
    expect(layersToEncrypt(3, [0, -1])).toEqual({ encrypt: [true, false, true] });
    expect(layersToEncrypt(2, [2])).toEqual({ error: '--encrypt-layer 2: the image has 2 layers' });
    expect(layersToEncrypt(2, [-3])).toEqual({ error: '--encrypt-layer -3: the image has 2 layers' });
  });

  it('references non-distributable layers instead of copying them', () => {
    expect(decideCopyLayer(copyLayer({ foreign: true }), asIs, undefined)).toMatchObject({
      action: 'reference',
      reasons: ['non-distributable'],
    });
  });

  it('turns every layer into a plain tar for a destination that holds only those, and refuses what cannot be one', () => {
    expect(decideCopyLayer(copyLayer(), archive, undefined)).toMatchObject({
      action: 'convert',
      to: 'tar',
      reasons: ['destination-uncompressed'],
    });
    expect(decideCopyLayer(copyLayer({ compression: 'none' }), archive, undefined).action).toBe('copy');
    for (const over of [{ encrypted: true }, { foreign: true }, { compression: undefined }] as const) {
      const refused = decideCopyLayer(copyLayer(over), archive, undefined);
      expect(refused.action).toBe('refuse');
      expect(refused).toHaveProperty(
        'message',
        expect.stringMatching(/^a docker archive holds plain tar layers; layer sha256:0+1 cannot go in/),
      );
    }
  });

  it('converts a schema1 layer (compression unknown: sniffed) when a form is asked for, else copies it', () => {
    expect(decideSchema1Layer(asIs, undefined)).toEqual({ action: 'copy', reasons: ['as-is'] });
    expect(decideSchema1Layer(asIs, 'zstd')).toEqual({
      action: 'convert',
      to: 'zstd',
      from: 'sniff',
      reasons: ['convert-requested'],
    });
    expect(decideSchema1Layer(archive, undefined)).toMatchObject({ action: 'convert', to: 'tar' });
  });

  const blob = (over: Partial<BlobFacts> = {}): BlobFacts => ({
    present: false,
    placedThisRun: false,
    mountCandidate: false,
    blobMount: true,
    ...over,
  });

  it('skips a blob the destination has or this run placed, mounts where it can, copies otherwise', () => {
    expect(decideBlob(blob({ present: true }))).toEqual({ action: 'skip', reason: 'present' });
    expect(decideBlob(blob({ placedThisRun: true }))).toEqual({ action: 'skip', reason: 'placed-this-run' });
    expect(decideBlob(blob({ mountCandidate: true }))).toEqual({ action: 'mount', reason: 'mountable' });
    expect(decideBlob(blob({ mountCandidate: true, blobMount: false }))).toEqual({
      action: 'copy',
      reason: 'absent',
    });
    expect(decideBlob(blob({ present: undefined }))).toEqual({ action: 'copy', reason: 'absent' });
  });

  it('copies once the destination declined the mount (a run-time fact)', () => {
    expect(decideBlob(blob({ mountCandidate: true, mountDeclined: true }))).toEqual({
      action: 'copy',
      reason: 'mount-declined',
    });
  });
});
