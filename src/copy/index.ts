/**
 * The copy engine: every command that moves an image is a copy between two transports. It
 * resolves once (./resolve.ts), asks the strategy module for every layer's decision, moves or
 * converts the layers, and commits.
 *
 * - `copyImage` (./image-copy.ts): any source to a blob destination (registry, oci:, dir:,
 *   docker-archive:), by reference; `copyBetween` for transports already opened. mirror, save, push.
 * - `copyToStore` (./store-copy.ts): any source to the store (./store-destination.ts), which
 *   commits layers rather than blobs: reuse, partial and full pulls. pull.
 * - `StoreImageDestination` (./store-image-destination.ts): `store:NAME` as a destination by
 *   reference; copyImage hands a copy into it to copyToStore. mirror into the store.
 */
export { type CopyOptions, copyBetween, copyImage, type LayerEncryption } from './image-copy.js';
export { BlobLedger } from './ledger.js';
export { MAX_REPLANS, ReplanLimitError, RuntimeFactError, runWithReplans } from './replan.js';
export { copyToStore, type StoreCopyOptions } from './store-copy.js';
export { StoreDestination } from './store-destination.js';
export { StoreImageDestination } from './store-image-destination.js';
