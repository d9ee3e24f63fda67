/**
 * manifest → facts: everything the strategy module needs about each layer, gathered without
 * fetching any layer body (TOCs and tar-splits of partial candidates excepted, as docs/design.md §5 allows).
 */

import type { Digest } from '../../digest/index.js';
import { detectLayerFormat, type LayerFormat } from '../../formats/detect.js';
import type { ResumeSession, Store } from '../../store/index.js';
import type { ImageFacts, LayerFacts } from '../../strategy/index.js';
import { wantsToc } from '../../strategy/index.js';
import type { ImageSource } from '../../transport/index.js';
import type { ResolvedImage, ResolvedLayer } from '../resolve.js';
import { type ChunkedLayer, loadChunkedLayer } from './partial.js';

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
