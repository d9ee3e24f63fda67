/**
 * The store's one public face: everything outside src/store imports the store from here. How it
 * keeps content (packs, loose objects, their indexes) and where its files live (layout.ts) stay
 * inside; readers get content by digest through ContentReader, or a byte range of content the
 * store located through readStoredRange (docs/store.md).
 */

// Maintenance: gc, fsck and the lock they and writers share.
export { checkStore, type DamageKind, type FsckResult, formatDamage, type StoreDamage } from './fsck.js';
export { collectGarbage, type GcOptions, type GcResult } from './gc.js';
// Writing layers into a session.
export {
  type HeldContent,
  type IngestOptions,
  ingestLayer,
  type RebuildPiece,
  type StagedLayer,
} from './ingest.js';
// The store, its writers' sessions, and where it lives.
export { type ImageFiles, type LayerFiles, renderStoreLayout, STORE_LAYOUT, StoreLayout } from './layout.js';
export { type StoreLockOptions, withStoreLock } from './lock.js';
// Reading stored content.
export {
  type ContentReader,
  type ContentRef,
  type ObjectLocation,
  type ObjectLocator,
  readStoredRange,
} from './reads.js';
export { layerEntries, rebuildLayerTar, writeVerifiedLayer } from './rebuild.js';
export { RebuildHasher, type RebuiltDigest } from './rebuild-hasher.js';
// The records the store keeps.
export type {
  BlobRecord,
  ChunkRef,
  ImageRecord,
  LayerRecord,
  ManifestRecord,
  NameRecord,
  StoredEntry,
} from './records.js';

// What an interrupted pull left for the next one.
export { PieceLog, PrefixWriter, ResumeArea, ResumeSession } from './resume.js';
export { type StagedLayerFiles, StoreSession } from './session.js';
export {
  defaultStorePath,
  type LayerGap,
  noStoreError,
  openExistingStore,
  PACK_THRESHOLD,
  Store,
} from './store.js';
export { readTarSplit, type TarSplitRecord, TarSplitWriter } from './tarsplit.js';
export { storeWriteFailure } from './write-failure.js';
