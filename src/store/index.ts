/**
 * The store's one public face: everything outside src/store imports the store from here. How it
 * keeps content (packs, loose objects, their indexes) and where its files live (layout.ts) stay
 * inside; readers get content by digest through a ContentReader (Store.openReader), or a byte
 * range of content the store located through readStoredRange (docs/store.md).
 */

// Maintenance: fsck.
export { checkStore, type DamageKind, type FsckResult, formatDamage, type StoreDamage } from './fsck.js';
// Maintenance: gc.
export { collectGarbage, type GcOptions, type GcResult } from './gc.js';
// Writing a layer into a session.
export {
  type HeldContent,
  type IngestOptions,
  ingestLayer,
  type RebuildPiece,
  type StagedLayer,
} from './ingest.js';
// Where everything in a store lives, and the table docs/store.md shows.
export { type ImageFiles, type LayerFiles, renderStoreLayout, STORE_LAYOUT, StoreLayout } from './layout.js';
// The lock gc holds for its run and a writer while it registers.
export { type StoreLockOptions, withStoreLock } from './lock.js';
// A session's pack file: small objects appended in batches (its bounds are tested on their own).
export { PackWriter, readObjectRange } from './packs.js';
// Reading stored content.
export {
  type ContentReader,
  type ContentRef,
  type ObjectLocation,
  type ObjectLocator,
  ObjectRangeReader,
  readStoredRange,
} from './reads.js';
// A stored layer as a tar again (save, fsck), and its entries (unpack).
export { layerEntries, rebuildLayerTar, writeVerifiedLayer } from './rebuild.js';
// Hashing a partial pull's rebuilt tar on a worker, reading the objects it names.
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
// A writer's session: staging, then commits.
export { type StagedLayerFiles, StoreSession } from './session.js';
// The store.
export {
  defaultStorePath,
  type LayerGap,
  LOOSE_OBJECT,
  noStoreError,
  openExistingStore,
  PACK_THRESHOLD,
  Store,
} from './store.js';
// A layer's tar-split: the tar's bytes that are not file content, and its entries.
export { readTarSplit, readTarSplitSync, type TarSplitRecord, TarSplitWriter } from './tarsplit.js';
// A failed write into the store (a full disk), said as one line.
export { storeWriteFailure } from './write-failure.js';
