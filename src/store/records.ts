/**
 * The store's on-disk records. They are our own files, but a store outlives the process that wrote
 * it (and its version of skiff), so each is validated when read.
 */
import { z } from 'zod';
import type { Digest } from '../digest/index.js';
import { DigestSchema } from '../manifest/schemas.js';

export const STORE_FORMAT = 'skiff-store';
/**
 * The store's version (skiff-store.json), raised whenever a store this skiff writes holds something
 * an older skiff would misread (docs/store.md "Versions"): 2 since its tar-splits are format 2.
 * Stores from OLDEST_STORE_VERSION on are opened and read as they are, and raised to STORE_VERSION
 * when this skiff first commits a layer into them; a newer store is refused by name.
 */
export const STORE_VERSION = 2;
export const OLDEST_STORE_VERSION = 1;

export const StoreVersionSchema = z.object({ format: z.literal(STORE_FORMAT), version: z.number().int() });

/** One entry of a layer, in tar order. `digest` names the content object of a non-empty regular file. */
export const StoredEntrySchema = z.object({
  path: z.string(),
  type: z.enum(['file', 'hardlink', 'symlink', 'char', 'block', 'dir', 'fifo']),
  mode: z.number().int(),
  uid: z.number().int(),
  gid: z.number().int(),
  uname: z.string().optional(),
  gname: z.string().optional(),
  size: z.number().int().nonnegative(),
  mtime: z.number(),
  link: z.string().optional(),
  devmajor: z.number().int().optional(),
  devminor: z.number().int().optional(),
  xattrs: z.record(z.string(), z.string()).optional(),
  digest: DigestSchema.optional(),
});
export type StoredEntry = z.infer<typeof StoredEntrySchema>;

/** A chunk of a stored file, as a chunked layer's TOC named it: reusable by later partial pulls. */
export const ChunkRefSchema = z.object({
  digest: DigestSchema,
  object: DigestSchema,
  offset: z.number().int().nonnegative(),
  size: z.number().int().positive(),
});
export type ChunkRef = z.infer<typeof ChunkRefSchema>;

export const LayerRecordSchema = z.object({
  schema: z.literal(1),
  diffID: DigestSchema,
  /** 'publisher': the image config committed to this DiffID; 'computed': skiff hashed it (schema1). */
  provenance: z.enum(['publisher', 'computed']),
  tarSize: z.number().int().nonnegative(),
  entries: z.number().int().nonnegative(),
  contentBytes: z.number().int().nonnegative(),
  createdAt: z.string(),
  source: z
    .object({ blobDigest: DigestSchema, mediaType: z.string(), format: z.string(), method: z.string() })
    .optional(),
  /** How many chunk references chunks.idx holds (from a chunked layer's TOC). */
  chunkCount: z.number().int().nonnegative().optional(),
});
export type LayerRecord = z.infer<typeof LayerRecordSchema>;

export const PlatformRecordSchema = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
});

export const ManifestRecordSchema = z.object({
  digest: DigestSchema,
  mediaType: z.string(),
  layers: z.array(
    z.object({ digest: DigestSchema, size: z.number(), mediaType: z.string(), diffID: DigestSchema }),
  ),
});
export type ManifestRecord = z.infer<typeof ManifestRecordSchema>;

export const ImageRecordSchema = z.object({
  schema: z.literal(1),
  configDigest: DigestSchema,
  diffIDs: z.array(DigestSchema),
  /** True when the DiffIDs were computed by skiff (schema1), not committed to by the publisher. */
  diffIDsComputed: z.boolean(),
  platform: PlatformRecordSchema,
  createdAt: z.string(),
});
export type ImageRecord = z.infer<typeof ImageRecordSchema>;

/**
 * A name file: names/<name>@<platform>.json. Files written before names carried a platform
 * (names/<name>.json, no `platform` field) are still read: their platform is their image's.
 */
export const NameRecordFileSchema = z.object({
  name: z.string(),
  /** os/arch[/variant], as formatPlatform writes it. */
  platform: z.string().optional(),
  configDigest: DigestSchema,
  manifestDigest: DigestSchema,
  updatedAt: z.string(),
});
export type LegacyNameRecord = z.infer<typeof NameRecordFileSchema>;
/** A name for one platform, as the store hands it out (the platform always known). */
export type NameRecord = LegacyNameRecord & { platform: string };

export const BlobRecordSchema = z.object({
  diffID: DigestSchema,
  provenance: z.enum(['publisher', 'computed']),
});
export type BlobRecord = z.infer<typeof BlobRecordSchema>;

export type { Digest };
