/**
 * The content-addressed store (docs/design.md §6; its layout: layout.ts and docs/store.md).
 *
 * Each content is stored once, addressed by its digest, whichever layers use it. Atomicity comes
 * from renames: everything is written under tmp/ and moved into place only when complete and
 * verified, in dependency order (objects → layers → images → names), so a reader (or a crash at
 * any moment) never sees a record whose parts are missing. What an interrupted pull leaves is
 * unreferenced, and `gc` removes it. Writers work through a StoreSession (session.ts).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Digest } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import { formatPlatform } from '../manifest/platform.js';
import { safeJson, writeFileAtomic } from '../util/files.js';
import { ChunkIndexSet, encodeChunkIndex } from './chunk-index.js';
import { type LayerFiles, StoreLayout } from './layout.js';
import { withStoreLock } from './lock.js';
import { decodeObjectList, encodeObjectList } from './object-list.js';
import { type ObjectLocation, PACK_THRESHOLD, type PackedRef, PackSet } from './packs.js';
import { ContentReader, readStoredRange } from './reads.js';
import {
  BlobRecordSchema,
  type ImageRecord,
  ImageRecordSchema,
  type LayerRecord,
  LayerRecordSchema,
  type LegacyNameRecord,
  type ManifestRecord,
  ManifestRecordSchema,
  type NameRecord,
  NameRecordFileSchema,
  OLDEST_STORE_VERSION,
  STORE_FORMAT,
  STORE_VERSION,
  type StoredEntry,
  StoreVersionSchema,
} from './records.js';
import { ResumeArea } from './resume.js';
import { type StagedLayerFiles, StoreSession } from './session.js';
import { readTarSplit, readTarSplitSync, type TarSplitRecord } from './tarsplit.js';

export { type StagedLayerFiles, StoreSession } from './session.js';
export { PACK_THRESHOLD };

/** Store.findObject's answer for content held as a loose object (located by its digest). */
export const LOOSE_OBJECT = -2;

/**
 * The store at `root` for commands that only read it (images, inspect, unpack, save, rmi, gc,
 * fsck): a path holding no store is refused (`no store at PATH`, exit 1) and nothing is created,
 * so a mistyped --store never leaves an empty store behind; a file is refused as not a store.
 */
export async function openExistingStore(root: string): Promise<Store> {
  const store = await Store.find(root);
  if (!store) throw noStoreError(root);
  return store;
}

export function noStoreError(root: string): UsageError {
  const resolved = path.resolve(root);
  return new UsageError(`no store at ${resolved}`, { path: resolved });
}

/** Where the store lives when neither --store nor $SKIFF_STORE says. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SKIFF_STORE) return path.resolve(env.SKIFF_STORE);
  const dataHome = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(dataHome, 'skiff');
}

export class Store {
  /** Where everything in this store lives. */
  readonly layout: StoreLayout;
  readonly packs: PackSet;
  private readonly chunkIndex: ChunkIndexSet;

  /** What interrupted pulls fetched and verified, for the next pull of the same blobs (resume.ts). */
  readonly resume: ResumeArea;
  /** The version skiff-store.json says; below STORE_VERSION until the first layer is committed. */
  private version = STORE_VERSION;
  private upgraded: Promise<void> | undefined;

  private constructor(readonly root: string) {
    this.layout = new StoreLayout(root);
    this.resume = new ResumeArea(this.layout);
    this.packs = new PackSet(this.layout);
    this.chunkIndex = new ChunkIndexSet(this.layout);
  }

  /** Opens (creating if needed) the store at `root`, refusing a store of another format or version. */
  static async open(root: string): Promise<Store> {
    const store = new Store(path.resolve(root));
    await store.initialise();
    return store;
  }

  /** The store at `root` if one is there (never creating it), undefined if none; a file is refused. */
  static async find(root: string): Promise<Store | undefined> {
    const resolved = path.resolve(root);
    const stat = await fsp.stat(resolved).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (stat && !stat.isDirectory())
      throw new UsageError(`${resolved} is not a store (a file)`, { path: resolved });
    if (!stat || !fs.existsSync(new StoreLayout(resolved).versionFile)) return undefined;
    return Store.open(resolved);
  }

  private async initialise(): Promise<void> {
    const versionFile = this.layout.versionFile;
    let existing: string | undefined;
    try {
      existing = await fsp.readFile(versionFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing !== undefined) {
      const parsed = StoreVersionSchema.safeParse(safeJson(existing));
      if (!parsed.success)
        throw new UsageError(`${versionFile} is not a skiff store version file`, { path: versionFile });
      const { version } = parsed.data;
      if (version > STORE_VERSION)
        throw new UsageError(
          `store ${this.root} was written by a newer skiff (store version ${version}); this one reads store versions ${OLDEST_STORE_VERSION} to ${STORE_VERSION}`,
          { path: this.root },
        );
      if (version < OLDEST_STORE_VERSION)
        throw new UsageError(
          `store ${this.root} has store version ${version}; this skiff reads store versions ${OLDEST_STORE_VERSION} to ${STORE_VERSION}`,
          { path: this.root },
        );
      this.version = version;
      return;
    }
    await fsp.mkdir(this.root, { recursive: true });
    const { directories, objectShards } = this.layout;
    await Promise.all(directories.map((d) => fsp.mkdir(d, { recursive: true })));
    // The fan-out directories exist up front so the hot path never has to mkdir.
    await Promise.all(objectShards.map((d) => fsp.mkdir(d, { recursive: true })));
    await this.writeAtomic(
      versionFile,
      `${JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION })}\n`,
    );
  }

  // ---- paths (kept for callers; the layout owns them) ---------------------------------------

  /** Where a large (loose) object lives. */
  loosePath(digest: Digest): string {
    return this.layout.looseObject(digest);
  }

  layerDir(diffID: Digest): string {
    return this.layout.layerDir(diffID);
  }

  imageDir(configDigest: Digest): string {
    return this.layout.imageDir(configDigest);
  }

  // ---- objects -----------------------------------------------------------------------------

  /**
   * Whether the store holds content `digest`. With its size, only the one place it can be is
   * looked at (packed objects are a memory lookup; loose ones a stat).
   */
  hasObject(digest: Digest, size?: number): boolean {
    return this.locate(digest, size) !== undefined;
  }

  /**
   * Whether the store holds the content of raw sha256 `key` and `size`, as a number: a PackedRef
   * (>= 0; where it is: packedLocation), LOOSE_OBJECT, or -1. For a caller that asks about every
   * file of a layer and keeps the answers (a partial pull's plan, then its rebuild): no digest
   * string, location object or cache entry per file.
   */
  findObject(key: Buffer, size: number): number {
    if (size <= PACK_THRESHOLD) return this.packs.refOf(key);
    const loose = this.layout.looseObject(`sha256:${key.toString('hex')}` as Digest);
    return fs.existsSync(loose) ? LOOSE_OBJECT : -1;
  }

  /** Where the packed object of a findObject answer (>= 0) is. */
  packedLocation(ref: PackedRef): ObjectLocation {
    return this.packs.locationOf(ref);
  }

  locate(digest: Digest, size?: number): ObjectLocation | undefined {
    if (size === undefined || size <= PACK_THRESHOLD) {
      const packed = this.packs.locate(digest);
      if (packed || size !== undefined) return packed;
    }
    const loose = this.layout.looseObject(digest);
    const stat = fs.statSync(loose, { throwIfNoEntry: false });
    return stat ? { path: loose, offset: 0, size: stat.size, packed: false } : undefined;
  }

  // ---- layers ------------------------------------------------------------------------------

  hasLayer(diffID: Digest): boolean {
    return fs.existsSync(this.layout.layer(diffID).record);
  }

  /**
   * What a committed layer lacks, if anything: its record, its tar-split, or objects its entries
   * name. Quick (for reuse): the objects are those its objects.idx lists, an index lookup each
   * (a stat for loose ones), where reading the tar-split would cost ~0.2 s for 8k files. Thorough
   * (fsck, or a layer committed before objects.idx existed): those its tar-split names.
   */
  async missingLayerParts(
    diffID: Digest,
    options: { thorough?: boolean } = {},
  ): Promise<LayerGap | undefined> {
    const files = this.layout.layer(diffID);
    if (!this.hasLayer(diffID)) return { part: 'record', file: files.record };
    const tarSplit = files.tarSplit;
    if (!fs.existsSync(tarSplit)) return { part: 'tar-split', file: tarSplit };
    const listed = options.thorough ? undefined : this.layerObjectList(diffID);
    const missing: Array<{ digest: Digest; path?: string }> = [];
    if (listed) {
      for (const digest of listed) if (!this.hasObject(digest)) missing.push({ digest });
    } else {
      for await (const record of readTarSplit(tarSplit)) {
        if (!('e' in record)) continue;
        const { digest, size, path: entryPath } = record.e;
        if (digest && size > 0 && !this.hasObject(digest, size)) missing.push({ digest, path: entryPath });
      }
    }
    return missing.length > 0 ? { part: 'objects', objects: missing } : undefined;
  }

  /** The objects a layer's objects.idx lists; undefined when it has none (or an unreadable one). */
  layerObjectList(diffID: Digest): Digest[] | undefined {
    try {
      return decodeObjectList(fs.readFileSync(this.layout.layer(diffID).objects));
    } catch {
      return undefined;
    }
  }

  /** Whether a pull may reuse this layer: committed, with every part present. */
  async hasCompleteLayer(diffID: Digest): Promise<boolean> {
    try {
      return (await this.missingLayerParts(diffID)) === undefined;
    } catch {
      return false; // an unreadable tar-split: not reusable either
    }
  }

  async readLayer(diffID: Digest): Promise<LayerRecord> {
    return readRecord(
      LayerRecordSchema,
      this.layout.layer(diffID).record,
      () => new NotFoundError(`layer ${diffID} is not in the store`, { digest: diffID }),
    );
  }

  layerTarSplitPath(diffID: Digest): string {
    return this.layout.layer(diffID).tarSplit;
  }

  /** A committed layer's tar-split: its raw segments and its entries, in tar order. */
  readLayerTarSplit(diffID: Digest): AsyncGenerator<TarSplitRecord> {
    return readTarSplit(this.layout.layer(diffID).tarSplit);
  }

  /**
   * A committed layer's entries, in tar order; with `mentioning`, only those whose record
   * mentions that text (a cheap first cut: the caller still checks what it wants).
   */
  async *layerEntries(diffID: Digest, options: { mentioning?: string } = {}): AsyncGenerator<StoredEntry> {
    const records = readTarSplit(this.layout.layer(diffID).tarSplit, { entriesOnly: true, ...options });
    for await (const record of records) if ('e' in record) yield record.e;
  }

  /** layerEntries, synchronously (readTarSplitSync): for a reader that works per entry without awaiting. */
  *layerEntriesSync(diffID: Digest, options: { mentioning?: string } = {}): Generator<StoredEntry> {
    const records = readTarSplitSync(this.layout.layer(diffID).tarSplit, { entriesOnly: true, ...options });
    for (const record of records) if ('e' in record) yield record.e;
  }

  /**
   * Renames a staged layer directory into place; called by StoreSession.commitLayer. A complete
   * layer already there (another pull's) is kept; anything else there (a layer missing parts, the
   * leftovers of an older gc killed mid-removal) is moved aside into tmp/ and replaced.
   */
  async placeLayer(diffID: Digest, staged: StagedLayerFiles): Promise<void> {
    if (await this.hasCompleteLayer(diffID)) return;
    const files: LayerFiles = StoreLayout.layerFiles(staged.dir);
    if (staged.chunks && staged.chunks.length > 0)
      await fsp.writeFile(files.chunks, encodeChunkIndex(staged.chunks), { mode: 0o444 });
    await fsp.writeFile(files.objects, encodeObjectList(staged.objects), { mode: 0o444 });
    await fsp.writeFile(files.record, `${JSON.stringify(staged.record)}\n`, { mode: 0o444 });
    await this.upgrade();
    const target = this.layerDir(diffID);
    for (let attempt = 0; ; attempt++) {
      try {
        await fsp.rename(staged.dir, target);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 3) throw error;
        // Another pull committed the same layer meanwhile: same DiffID, same content.
        if (await this.hasCompleteLayer(diffID)) return;
        const trash = await this.moveToTrash(target);
        if (trash) await fsp.rm(trash, { recursive: true, force: true });
      }
    }
    this.chunkIndex.add(diffID);
  }

  /**
   * Raises an older store's version to ours before the first layer this skiff wrote becomes
   * visible: its tar-split is format 2, which a skiff of the older version would call damage, so
   * from then on such a skiff refuses the store by its version instead. Until then the store is
   * read as it is and left at its version (read-only commands never write it).
   */
  private upgrade(): Promise<void> {
    if (this.version >= STORE_VERSION) return Promise.resolve();
    this.upgraded ??= this.writeAtomic(
      this.layout.versionFile,
      `${JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION })}\n`,
    ).then(() => {
      this.version = STORE_VERSION;
    });
    return this.upgraded;
  }

  /**
   * Moves a directory out of the store's namespace into tmp/ (one rename: a kill leaves it either
   * where it was or in tmp/, which gc empties); the caller removes it or leaves it to gc.
   */
  async moveToTrash(dir: string): Promise<string | undefined> {
    const trash = this.layout.trash(`${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.rename(dir, trash);
      return trash;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Where a chunk can be read locally, if a stored object holds it (the reader verifies it). */
  findChunk(
    digest: Digest,
  ): { object: Digest; location: ObjectLocation; offset: number; size: number } | undefined {
    const ref = this.chunkIndex.find(digest);
    if (!ref) return undefined;
    const location = this.locate(ref.object);
    if (!location || ref.offset + ref.size > location.size) return undefined;
    return { object: ref.object, location, offset: ref.offset, size: ref.size };
  }

  /** `length` bytes from `start` within content the store located (a chunk of a stored file). */
  readRange(location: ObjectLocation, start: number, length: number): Promise<Buffer> {
    return readStoredRange(location, start, length);
  }

  /** A reader of stored content by digest, in layer order (close it when done). */
  openReader(options: { transient?: boolean } = {}): ContentReader {
    return new ContentReader(this, options);
  }

  // ---- blobs -------------------------------------------------------------------------------

  async recordBlob(blobDigest: Digest, diffID: Digest, provenance: 'publisher' | 'computed'): Promise<void> {
    const file = this.layout.blobRecord(blobDigest);
    if (fs.existsSync(file)) return;
    await this.writeAtomic(file, `${JSON.stringify({ diffID, provenance })}\n`);
  }

  /** The DiffID a compressed blob was verified to carry, if this store has seen it. */
  async blobDiffID(
    blobDigest: Digest,
  ): Promise<{ diffID: Digest; provenance: 'publisher' | 'computed' } | undefined> {
    try {
      return await readRecord(
        BlobRecordSchema,
        this.layout.blobRecord(blobDigest),
        () => new Error('absent'),
      );
    } catch {
      return undefined;
    }
  }

  // ---- images and names ----------------------------------------------------------------------

  /** Commits an image record with its config and manifest; all its layers must be committed. */
  async commitImage(
    session: StoreSession,
    image: ImageRecord,
    configBytes: Buffer,
    manifest: { record: ManifestRecord; bytes: Buffer },
  ): Promise<void> {
    for (const diffID of image.diffIDs) {
      if (!this.hasLayer(diffID))
        throw new VerificationError(`cannot commit image ${image.configDigest}: layer ${diffID} is missing`);
    }
    const { dir, record } = this.layout.image(image.configDigest);
    const manifestRecord = `${JSON.stringify(manifest.record)}\n`;
    if (!fs.existsSync(record)) {
      const staged = StoreLayout.imageFiles(await session.stagingDir('image'));
      const stagedManifest = StoreLayout.manifestFiles(staged.dir, manifest.record.digest);
      await fsp.writeFile(staged.config, configBytes, { mode: 0o444 });
      await fsp.writeFile(stagedManifest.bytes, manifest.bytes, { mode: 0o444 });
      await fsp.writeFile(stagedManifest.record, manifestRecord, { mode: 0o444 });
      await fsp.writeFile(staged.record, `${JSON.stringify(image)}\n`, { mode: 0o444 });
      try {
        await fsp.rename(staged.dir, dir);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
        await fsp.rm(staged.dir, { recursive: true, force: true });
      }
    }
    // The image exists (pulled before, perhaps from another manifest): add this manifest to it.
    const added = StoreLayout.manifestFiles(dir, manifest.record.digest);
    if (!fs.existsSync(added.record)) {
      await this.writeAtomic(added.bytes, manifest.bytes);
      await this.writeAtomic(added.record, manifestRecord);
    }
  }

  /**
   * Points `name` for `platform` at an image: one file per name and platform, so a tag pulled for
   * two platforms keeps both, and concurrent pulls never race on a shared list. A file of the
   * older form (the name alone) naming an image of the same platform is superseded and removed.
   */
  async setName(name: string, platform: string, configDigest: Digest, manifestDigest: Digest): Promise<void> {
    const record: NameRecord = {
      name,
      platform,
      configDigest,
      manifestDigest,
      updatedAt: new Date().toISOString(),
    };
    await this.writeAtomic(this.layout.nameFile(name, platform), `${JSON.stringify(record)}\n`);
    const legacy = await this.readNameFile(this.layout.legacyNameFile(name));
    if (legacy && legacy.platform === platform) await unlinkIfPresent(this.layout.legacyNameFile(name));
  }

  /** Removes `name` for `platform` (in either file form); false if the store had no such name. */
  async removeName(name: string, platform: string): Promise<boolean> {
    let removed = await unlinkIfPresent(this.layout.nameFile(name, platform));
    const legacy = await this.readNameFile(this.layout.legacyNameFile(name));
    if (legacy && legacy.platform === platform)
      removed = (await unlinkIfPresent(this.layout.legacyNameFile(name))) || removed;
    return removed;
  }

  /**
   * Every name, one record per name and platform, sorted by name then platform. Records of the
   * older form have the platform of the image they name filled in (an image has one platform).
   */
  async listNames(): Promise<NameRecord[]> {
    return this.readNameFiles(() => true);
  }

  /** The records of one name, one per platform it was pulled for. */
  async readNames(name: string): Promise<NameRecord[]> {
    return this.readNameFiles((file) => StoreLayout.isNameFileOf(file, name));
  }

  private async readNameFiles(wanted: (file: string) => boolean): Promise<NameRecord[]> {
    const dir = this.layout.namesDir;
    const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.json') && wanted(f));
    const records = (await Promise.all(files.map((f) => this.readNameFile(path.join(dir, f))))).filter(
      (r): r is NameRecord => r !== undefined,
    );
    // Both file forms may name the same name and platform (a store written by an older skiff and
    // then pulled into): the newer record wins.
    const unique = new Map<string, NameRecord>();
    for (const record of records) {
      const key = `${record.name}\u0000${record.platform}`;
      const seen = unique.get(key);
      if (!seen || seen.updatedAt < record.updatedAt) unique.set(key, record);
    }
    const key = (r: NameRecord) => `${r.name}\u0000${r.platform}`;
    return [...unique.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }

  /** A name file of either form, its platform filled in; undefined if absent, unreadable or dangling. */
  private async readNameFile(file: string): Promise<NameRecord | undefined> {
    let record: LegacyNameRecord;
    try {
      record = await readRecord(NameRecordFileSchema, file, () => new Error('absent'));
    } catch {
      return undefined;
    }
    if (record.platform !== undefined) return { ...record, platform: record.platform };
    const image = await this.readImage(record.configDigest).catch(() => undefined);
    return image ? { ...record, platform: formatPlatform(image.platform) } : undefined;
  }

  async listImages(): Promise<Digest[]> {
    const entries = await fsp.readdir(this.layout.imagesDir);
    return entries
      .filter((hex) => /^[a-f0-9]{64}$/.test(hex))
      .sort()
      .map((hex) => `sha256:${hex}` as Digest)
      .filter((digest) => this.hasImage(digest));
  }

  hasImage(configDigest: Digest): boolean {
    return fs.existsSync(this.layout.image(configDigest).record);
  }

  async readImage(configDigest: Digest): Promise<ImageRecord> {
    return readRecord(
      ImageRecordSchema,
      this.layout.image(configDigest).record,
      () => new NotFoundError(`image ${configDigest} is not in the store`, { digest: configDigest }),
    );
  }

  async readImageConfig(configDigest: Digest): Promise<Buffer> {
    return fsp.readFile(this.layout.image(configDigest).config);
  }

  /** The manifests an image was pulled through, sorted by digest (a stated rule, not directory order). */
  async readImageManifests(configDigest: Digest): Promise<Array<{ record: ManifestRecord; bytes: Buffer }>> {
    const dir = this.layout.imageDir(configDigest);
    const files = (await fsp.readdir(dir)).filter(StoreLayout.isManifestRecord).sort();
    return Promise.all(
      files.map(async (f) => ({
        record: await readRecord(ManifestRecordSchema, path.join(dir, f), () => new Error('vanished')),
        bytes: await fsp.readFile(path.join(dir, f.slice(0, -'.json'.length))),
      })),
    );
  }

  /** Removes an image record (not its layers: gc does that once nothing references them). */
  async removeImage(configDigest: Digest): Promise<void> {
    const trash = await this.moveToTrash(this.layout.imageDir(configDigest));
    if (trash) await fsp.rm(trash, { recursive: true, force: true });
  }

  // ---- sessions ----------------------------------------------------------------------------

  /**
   * Starts a pull (or any writer): registers it so gc leaves the store alone while it runs. The
   * registration is made under the store lock, which gc holds from its check for live sessions to
   * its last deletion: a session therefore starts either before gc looks (and gc refuses to run)
   * or after gc is done (it waits), never while gc is deciding or deleting. The caller consults the
   * store (what to reuse) only after this resolves.
   */
  async beginSession(options: { notice?: (line: string) => void } = {}): Promise<StoreSession> {
    const id = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const session = new StoreSession(this, id);
    await withStoreLock(this.root, { purpose: 'pull', ...options }, async () => {
      try {
        await fsp.writeFile(
          this.layout.sessionFile(id),
          JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }),
        );
        await fsp.mkdir(session.tmpDir, { recursive: true });
      } catch (error) {
        // A session that could not start (a full disk) leaves no trace for gc to wait on.
        await session.end().catch(() => undefined);
        throw error;
      }
    });
    return session;
  }

  // ---- helpers -----------------------------------------------------------------------------

  /**
   * Writes a small file atomically: temp file in the same directory, then rename. A failed write
   * (a full disk) takes its temp file with it: the store stays as it was.
   */
  async writeAtomic(file: string, data: string | Buffer): Promise<void> {
    await writeFileAtomic(file, data, { mode: 0o444 });
  }
}

/** The first thing found missing from a committed layer. */
export type LayerGap =
  | { part: 'record' | 'tar-split'; file: string }
  | { part: 'objects'; objects: Array<{ digest: Digest; path?: string }> };

async function readRecord<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
  file: string,
  missing: () => Error,
): Promise<T> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missing();
    throw error;
  }
  const parsed = schema.safeParse(safeJson(text));
  if (!parsed.success) throw new VerificationError(`store record ${file} is corrupt`, { path: file });
  return parsed.data;
}

async function unlinkIfPresent(file: string): Promise<boolean> {
  try {
    await fsp.unlink(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
