/** What one layer's execution needs to know, gathered once per pull. */

import type { TarSizeBound } from '../../formats/compression.js';
import type { LayerFormat } from '../../formats/detect.js';
import type { DecryptionKey } from '../../formats/encryption/keys.js';
import type { IngestOptions, ResumeSession, StoreSession } from '../../store/index.js';
import type { ImageSource } from '../../transport/index.js';
import type { ResolvedLayer } from '../resolve.js';

export interface LayerContext {
  layer: ResolvedLayer;
  format: LayerFormat;
  source: ImageSource;
  session: StoreSession;
  keys: DecryptionKey[];
  /** 'publisher' when the config commits to the DiffID, 'computed' for schema1. */
  provenance: 'publisher' | 'computed';
  /** Reports bytes received from the source (progress and the report's bytesFetched). */
  fetched(bytes: number): void;
  signal: AbortSignal;
  /** How big the layer's tar may be (asked when a full pull starts: facts may have changed). */
  tarSizeBound(): TarSizeBound;
  /** --max-layer-size: what any layer's tar may have at most. */
  maxLayerSize: number;
  /** Where this pull keeps what it fetched for a later pull, when the source is worth resuming. */
  resume?: ResumeSession | undefined;
  /** Reports bytes a resumed layer did not fetch again (held from an interrupted pull, re-verified). */
  resumed(bytes: number): void;
  /** A warning for the report (stderr, and the --json report's warnings). */
  warn(message: string): void;
  /**
   * For a chunked layer pulled in full (no-saving, or after a fallback): what its verified TOC
   * told us, so files already held are not rewritten and its chunks are indexed for later.
   */
  fullPullHints?: Pick<IngestOptions, 'knownDigest' | 'chunks'>;
}
