/**
 * manifest → facts: everything the strategy module needs about each layer, gathered without
 * fetching any layer body (TOCs and tar-splits of partial candidates excepted, as docs/design.md §5 allows).
 */

import type { Digest } from '../../digest/index.js';
import type { TarSizeBound } from '../../formats/compression.js';
import { detectLayerFormat, type LayerFormat } from '../../formats/detect.js';
import { TocFiles } from '../../formats/zstd-chunked.js';
import type { ResumeSession, Store } from '../../store/index.js';
import { withoutFiles } from '../../strategy/fetch-set.js';
import type { ImageFacts, LayerFacts } from '../../strategy/index.js';
import { wantsToc } from '../../strategy/index.js';
import type { ImageSource } from '../../transport/index.js';
import type { ResolvedImage, ResolvedLayer } from '../resolve.js';
import type { LayerContext } from './context.js';
import { tarSizeBound } from './layer-full.js';
import { type ChunkedLayer, chunkRefs, loadChunkedLayer, tocDigestsByPath } from './partial.js';

export interface GatheredLayer {
  layer: ResolvedLayer;
  format: LayerFormat;
  facts: LayerFacts;
  /** The DiffID the store holds this layer under, when it does (for schema1: computed earlier). */
  storedDiffID?: Digest | undefined;
  /** For partial candidates: the verified TOC, tar-split and what would be fetched. */
  chunked?: ChunkedLayer | undefined;
  /** Bytes already fetched while planning (TOC, tar-split, footer). */
  planningBytes: number;
}

export async function gatherLayerFacts(
  resolved: ResolvedImage,
  image: ImageFacts,
  store: Store,
  source: ImageSource,
  signal: AbortSignal,
  resume?: { session: ResumeSession; warn(message: string): void },
): Promise<GatheredLayer[]> {
  const gathered: GatheredLayer[] = [];
  for (const layer of resolved.layers) {
    const format = detectLayerFormat(layer);
    const known = layer.diffID ?? (await store.blobDiffID(layer.digest))?.diffID;
    // Reused only when whole: a layer missing its tar-split or objects is pulled again.
    const inStore = known !== undefined && (await store.hasCompleteLayer(known));
    const facts: LayerFacts = {
      index: layer.index,
      digest: layer.digest,
      size: layer.size,
      format,
      diffID: layer.diffID,
      inStore,
    };
    gathered.push({ layer, format, facts, storedDiffID: inStore ? known : undefined, planningBytes: 0 });
  }
  // TOCs are fetched only for layers a verified TOC could make partial (the strategy module says
  // which), in parallel.
  await Promise.all(
    gathered.map(async (g) => {
      if (!wantsToc(image, g.facts)) return;
      const pieces = resume ? await resume.session.openPieces(g.layer.digest) : undefined;
      if (pieces?.discarded)
        resume?.warn(`layer ${g.layer.digest}: part of its resumable state discarded (${pieces.discarded})`);
      const loaded = await loadChunkedLayer(source, g.layer, g.format, store, signal, pieces?.pieces);
      if (loaded.toc) g.facts.toc = loaded.toc;
      if (loaded.runtime) g.facts.runtime = loaded.runtime;
      g.chunked = loaded.chunked;
      g.planningBytes = loaded.metadataBytes;
    }),
  );
  return gathered;
}

/**
 * What a full pull of a layer takes from what planning gathered, as its attempt starts: the bound
 * on its tar (a chunked layer's verified tar-split gives it) and, for a chunked layer, the hints
 * from its TOC (the digests by path, so files already held are not rewritten, and the chunks of
 * multi-chunk files for the store's chunk index). Then the TOC's chunk columns, the tar-split and
 * the partial plan, which a full pull does not use, are let go before the blob is fetched: with
 * every layer in flight at once they were held beside every ingest (docs/memory.md). A full attempt
 * is not re-planned; one after it would go without them (the bound falls back to the cap).
 */
export function takeForFullPull(
  g: GatheredLayer,
  maxLayerSize: number,
): { bound: TarSizeBound; hints?: FullPullHints } {
  const bound = tarSizeBound(g.chunked, g.facts.runtime, maxLayerSize);
  if (!g.chunked) return { bound };
  const { toc } = g.chunked;
  const refs = chunkRefs(toc);
  const hints = {
    knownDigest: tocDigestsByPath({ ...toc, files: toc.files.withoutChunks() }),
    chunks: () => refs,
  };
  releaseChunked(g);
  return { bound, hints };
}

type FullPullHints = NonNullable<LayerContext['fullPullHints']>;

/**
 * Lets go of what planning gathered for a chunked layer that is done with it: a staged layer (a
 * re-plan only follows a failure) or one pulled in full. The TOC's records, the plan and the
 * tar-split go before the next layer is pulled, instead of when the image commits; the piece log
 * stays (closed with the session), and the counts the report gives.
 */
export function releaseChunked(g: GatheredLayer): void {
  if (!g.chunked) return;
  const { toc, fetchSet } = g.chunked;
  g.chunked = {
    ...g.chunked,
    toc: { ...toc, files: TocFiles.empty },
    tarSplit: Buffer.alloc(0),
    fetchSet: withoutFiles(fetchSet),
    localChunks: new Map(),
    heldObjects: new Float64Array(0),
  };
}
