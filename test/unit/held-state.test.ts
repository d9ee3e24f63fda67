// What planning gathered for a chunked layer is let go once the layer no longer needs it
// (src/copy/store/facts.ts, docs/memory.md): a full pull takes its tar's bound and its TOC hints
// first, and a tar-split let go is never read again as a bound.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type GatheredLayer, releaseChunked, takeForFullPull } from '../../src/copy/store/facts.js';
import { tarSizeBound } from '../../src/copy/store/layer-full.js';
import type { Digest } from '../../src/digest/index.js';
import { detectLayerFormat, type ZstdChunkedInfo } from '../../src/formats/detect.js';
import { metadataRanges, parseChunkedMetadata } from '../../src/formats/zstd-chunked.js';
import { planFetchSet } from '../../src/strategy/fetch-set.js';

const images = path.resolve(import.meta.dirname, '../../fixtures/images');
const blobOf = (dir: string, digest: string) =>
  fs.readFileSync(path.join(images, dir, 'blobs/sha256', digest.slice(7)));
const manifestOf = (dir: string) => {
  const index = JSON.parse(fs.readFileSync(path.join(images, dir, 'index.json'), 'utf8'));
  return JSON.parse(blobOf(dir, index.manifests[0].digest).toString('utf8'));
};

/** The first layer of the chunked fixture as planning leaves it: TOC, tar-split and a plan. */
function gathered(): { g: GatheredLayer; tarBytes: number } {
  const layer = manifestOf('chunked').layers[0];
  const blob = blobOf('chunked', layer.digest);
  const format = detectLayerFormat(layer);
  const info = format.chunked as ZstdChunkedInfo;
  const parts = metadataRanges(info, layer.size).map((r) => ({
    start: r.start,
    bytes: blob.subarray(r.start, r.end),
  }));
  const metadata = parseChunkedMetadata(info, layer.size, parts);
  const fetchSet = planFetchSet(metadata.toc, {
    heldFiles: new Uint8Array(metadata.toc.files.length),
    chunks: new Set(),
  });
  const tarBytes = blobOf('plain', manifestOf('plain').layers[0].digest).length;
  const resolved = {
    index: 0,
    digest: layer.digest as Digest,
    size: layer.size,
    mediaType: layer.mediaType,
    annotations: layer.annotations,
    diffID: undefined,
  };
  const g: GatheredLayer = {
    layer: resolved,
    format,
    facts: { index: 0, digest: resolved.digest, size: layer.size, format, diffID: undefined, inStore: false },
    chunked: {
      ...metadata,
      fetchSet,
      localChunks: new Map(),
      heldObjects: new Float64Array(metadata.toc.files.length),
      metadataBytes: 0,
      resumedBytes: 0,
    },
    planningBytes: 0,
  };
  return { g, tarBytes };
}

describe('a chunked layer pulled in full', () => {
  it('takes its bound and hints, then lets go of the TOC records, the tar-split and the plan', () => {
    const { g, tarBytes } = gathered();
    const files = g.chunked!.toc.files;
    expect(files.length).toBeGreaterThan(0);
    const expected = Array.from({ length: files.length }, (_, i) => [files.path(i), files.digest(i)]);
    const { bound, hints } = takeForFullPull(g, 1024 ** 3);
    expect(bound).toEqual({ bytes: tarBytes, by: 'its verified tar-split' });
    // Let go: nothing of them is left for the rest of the pull.
    expect(g.chunked!.tarSplit.length).toBe(0);
    expect(g.chunked!.toc.files.length).toBe(0);
    expect(g.chunked!.fetchSet.files).toEqual([]);
    expect(g.chunked!.heldObjects.length).toBe(0);
    // The hints still name every file's digest, in tar order.
    for (const [p, digest] of expected) expect(hints!.knownDigest!(p!)).toBe(digest);
  });

  it('bounds by the cap, not by a tar-split let go', () => {
    const { g } = gathered();
    releaseChunked(g);
    expect(tarSizeBound(g.chunked, undefined, 5000)).toEqual({ bytes: 5000, by: '--max-layer-size' });
    expect(takeForFullPull(g, 5000).bound).toEqual({ bytes: 5000, by: '--max-layer-size' });
  });
});
