/**
 * The content-addressed store (docs/design.md §6).
 *
 *   skiff-store.json            format and version
 *   packs/NAME.pack, NAME.idx   file contents up to 1 MiB, packed (see packs.ts)
 *   objects/sha256/ab/<hex>     larger file contents, one read-only file each
 *   layers/sha256/<hex>/        a committed layer: layer.json, tarsplit.jsonl.zst, chunks.idx
 *   images/sha256/<hex>/        an image by config digest: image.json, config.json, manifest-<hex>[.json]
 *   names/<encoded name>.json   a name → image (one file per name: concurrent pulls never race on a list)
 *   blobs/sha256/<hex>.json     a compressed blob → the DiffID it was verified to carry
 *   sessions/<id>.json          pulls in progress (gc refuses to run while a live one exists)
 *   tmp/<id>/                   staging of in-progress pulls; tmp/rm-*: directories being removed
 *   store.lock                  the store lock (lock.ts): gc for its run, a pull while it registers
 *   resume/sha256/<blob hex>/   what interrupted pulls fetched and verified (resume.ts; never read as committed)
 *
 * Each content is stored once, addressed by its digest, whichever layers use it. Atomicity comes
 * from renames: everything is written under tmp/ and moved into place only when complete and
 * verified, in dependency order (objects → layers → images → names), so a reader (or a crash at
 * any moment) never sees a record whose parts are missing. What an interrupted pull leaves is
 * unreferenced, and `gc` removes it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Digest, hexOf } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import { formatPlatform } from '../manifest/platform.js';
import { safeJson, writeFileAtomic } from '../util/files.js';
import { CHUNK_INDEX, ChunkIndexSet, encodeChunkIndex } from './chunk-index.js';
import { withStoreLock } from './lock.js';
import { decodeObjectList, encodeObjectList } from './object-list.js';
import { type ObjectLocation, PACK_THRESHOLD, PackSet, PackWriter } from './packs.js';
import {
  BlobRecordSchema,
  type ChunkRef,
  type ImageRecord,
  ImageRecordSchema,
  type LayerRecord,
  LayerRecordSchema,
  type LegacyNameRecord,
  type ManifestRecord,
  ManifestRecordSchema,
  type NameRecord,
  NameRecordFileSchema,
  STORE_FORMAT,
  STORE_VERSION,
  StoreVersionSchema,
} from './records.js';
import { ResumeArea } from './resume.js';
import { readTarSplit } from './tarsplit.js';

export const LAYER_RECORD = 'layer.json';
export { PACK_THRESHOLD };
export const LAYER_TARSPLIT = 'tarsplit.jsonl.zst';
/** Every object a layer's entries name, so a pull can check a layer is whole without its tar-split. */
export const LAYER_OBJECTS = 'objects.idx';
/** The file whose presence makes a directory a store. */
const STORE_VERSION_FILE = 'skiff-store.json';

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
  readonly packs: PackSet;
  private readonly chunkIndex: ChunkIndexSet;

  /** What interrupted pulls fetched and verified, for the next pull of the same blobs (resume.ts). */
  readonly resume: ResumeArea;

  private constructor(readonly root: string) {
    this.resume = new ResumeArea(path.join(root, 'resume'));
    this.packs = new PackSet(path.join(root, 'packs'));
    this.chunkIndex = new ChunkIndexSet(path.join(root, 'layers/sha256'));
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
    if (!stat || !fs.existsSync(path.join(resolved, STORE_VERSION_FILE))) return undefined;
    return Store.open(resolved);
  }

  private async initialise(): Promise<void> {
    const versionFile = path.join(this.root, STORE_VERSION_FILE);
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
      if (parsed.data.version !== STORE_VERSION) {
        throw new UsageError(
          `store ${this.root} has format version ${parsed.data.version}; this skiff reads version ${STORE_VERSION}`,
          {
            path: this.root,
          },
        );
      }
      return;
    }
    await fsp.mkdir(this.root, { recursive: true });
    const dirs = [
      'packs',
      'layers/sha256',
      'images/sha256',
      'names',
      'blobs/sha256',
      'sessions',
      'tmp',
      'resume/sha256',
    ];
    await Promise.all(dirs.map((d) => fsp.mkdir(path.join(this.root, d), { recursive: true })));
    // The fan-out directories exist up front so the hot path never has to mkdir.
    const fanout = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
    await Promise.all(
      fanout.map((h) => fsp.mkdir(path.join(this.root, 'objects/sha256', h), { recursive: true })),
    );
    await this.writeAtomic(
      versionFile,
      `${JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION })}\n`,
    );
  }

  // ---- paths -------------------------------------------------------------------------------

  /** Where a large (loose) object lives. */
  loosePath(digest: Digest): string {
    const hex = hexOf(digest);
    return path.join(this.root, 'objects/sha256', hex.slice(0, 2), hex);
  }

  layerDir(diffID: Digest): string {
    return path.join(this.root, 'layers/sha256', hexOf(diffID));
  }

  imageDir(configDigest: Digest): string {
    return path.join(this.root, 'images/sha256', hexOf(configDigest));
  }

  /**
   * names/<name>@<platform>.json, both URI-encoded: encoding never produces "@", so the file of
   * one name and platform can be told from another's, and from the older form below.
   */
  private nameFile(name: string, platform: string): string {
    return path.join(this.root, 'names', `${encodeURIComponent(name)}@${encodeURIComponent(platform)}.json`);
  }

  /** names/<name>.json: the form skiff wrote before names carried a platform (still read). */
  private legacyNameFile(name: string): string {
    return path.join(this.root, 'names', `${encodeURIComponent(name)}.json`);
  }

  private blobFile(digest: Digest): string {
    return path.join(this.root, 'blobs/sha256', `${hexOf(digest)}.json`);
  }

  // ---- objects -----------------------------------------------------------------------------

  /**
   * Whether the store holds content `digest`. With its size, only the one place it can be is
   * looked at (packed objects are a memory lookup; loose ones a stat).
   */
  hasObject(digest: Digest, size?: number): boolean {
    return this.locate(digest, size) !== undefined;
  }

  locate(digest: Digest, size?: number): ObjectLocation | undefined {
    if (size === undefined || size <= PACK_THRESHOLD) {
      const packed = this.packs.locate(digest);
      if (packed || size !== undefined) return packed;
    }
    const loose = this.loosePath(digest);
    const stat = fs.statSync(loose, { throwIfNoEntry: false });
    return stat ? { path: loose, offset: 0, size: stat.size, packed: false } : undefined;
  }

  // ---- layers ------------------------------------------------------------------------------

  hasLayer(diffID: Digest): boolean {
    return fs.existsSync(path.join(this.layerDir(diffID), LAYER_RECORD));
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
    if (!this.hasLayer(diffID))
      return { part: 'record', file: path.join(this.layerDir(diffID), LAYER_RECORD) };
    const tarSplit = this.layerTarSplitPath(diffID);
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
      return decodeObjectList(fs.readFileSync(path.join(this.layerDir(diffID), LAYER_OBJECTS)));
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
    const file = path.join(this.layerDir(diffID), LAYER_RECORD);
    return readRecord(
      LayerRecordSchema,
      file,
      () => new NotFoundError(`layer ${diffID} is not in the store`, { digest: diffID }),
    );
  }

  layerTarSplitPath(diffID: Digest): string {
    return path.join(this.layerDir(diffID), LAYER_TARSPLIT);
  }

  /**
   * Renames a staged layer directory into place; called by StoreSession.commitLayer. A complete
   * layer already there (another pull's) is kept; anything else there (a layer missing parts, the
   * leftovers of an older gc killed mid-removal) is moved aside into tmp/ and replaced.
   */
  async placeLayer(diffID: Digest, staged: StagedLayerFiles): Promise<void> {
    if (await this.hasCompleteLayer(diffID)) return;
    if (staged.chunks && staged.chunks.length > 0) {
      await fsp.writeFile(path.join(staged.dir, CHUNK_INDEX), encodeChunkIndex(staged.chunks), {
        mode: 0o444,
      });
    }
    await fsp.writeFile(path.join(staged.dir, LAYER_OBJECTS), encodeObjectList(staged.objects), {
      mode: 0o444,
    });
    await fsp.writeFile(path.join(staged.dir, LAYER_RECORD), `${JSON.stringify(staged.record)}\n`, {
      mode: 0o444,
    });
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
    this.chunkIndex.add(target);
  }

  /**
   * Moves a directory out of the store's namespace into tmp/ (one rename: a kill leaves it either
   * where it was or in tmp/, which gc empties); the caller removes it or leaves it to gc.
   */
  async moveToTrash(dir: string): Promise<string | undefined> {
    const trash = path.join(this.root, 'tmp', `rm-${process.pid}-${randomBytes(6).toString('hex')}`);
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

  // ---- blobs -------------------------------------------------------------------------------

  async recordBlob(blobDigest: Digest, diffID: Digest, provenance: 'publisher' | 'computed'): Promise<void> {
    const file = this.blobFile(blobDigest);
    if (fs.existsSync(file)) return;
    await this.writeAtomic(file, `${JSON.stringify({ diffID, provenance })}\n`);
  }

  /** The DiffID a compressed blob was verified to carry, if this store has seen it. */
  async blobDiffID(
    blobDigest: Digest,
  ): Promise<{ diffID: Digest; provenance: 'publisher' | 'computed' } | undefined> {
    try {
      return await readRecord(BlobRecordSchema, this.blobFile(blobDigest), () => new Error('absent'));
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
    const dir = this.imageDir(image.configDigest);
    const manifestName = `manifest-${hexOf(manifest.record.digest)}`;
    if (!fs.existsSync(path.join(dir, 'image.json'))) {
      const staging = await session.stagingDir('image');
      await fsp.writeFile(path.join(staging, 'config.json'), configBytes, { mode: 0o444 });
      await fsp.writeFile(path.join(staging, manifestName), manifest.bytes, { mode: 0o444 });
      await fsp.writeFile(
        path.join(staging, `${manifestName}.json`),
        `${JSON.stringify(manifest.record)}\n`,
        { mode: 0o444 },
      );
      await fsp.writeFile(path.join(staging, 'image.json'), `${JSON.stringify(image)}\n`, { mode: 0o444 });
      try {
        await fsp.rename(staging, dir);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
        await fsp.rm(staging, { recursive: true, force: true });
      }
    }
    // The image exists (pulled before, perhaps from another manifest): add this manifest to it.
    if (!fs.existsSync(path.join(dir, `${manifestName}.json`))) {
      await this.writeAtomic(path.join(dir, manifestName), manifest.bytes);
      await this.writeAtomic(path.join(dir, `${manifestName}.json`), `${JSON.stringify(manifest.record)}\n`);
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
    await this.writeAtomic(this.nameFile(name, platform), `${JSON.stringify(record)}\n`);
    const legacy = await this.readNameFile(this.legacyNameFile(name));
    if (legacy && legacy.platform === platform) await unlinkIfPresent(this.legacyNameFile(name));
  }

  /** Removes `name` for `platform` (in either file form); false if the store had no such name. */
  async removeName(name: string, platform: string): Promise<boolean> {
    let removed = await unlinkIfPresent(this.nameFile(name, platform));
    const legacy = await this.readNameFile(this.legacyNameFile(name));
    if (legacy && legacy.platform === platform)
      removed = (await unlinkIfPresent(this.legacyNameFile(name))) || removed;
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
    const encoded = encodeURIComponent(name);
    return this.readNameFiles((file) => file === `${encoded}.json` || file.startsWith(`${encoded}@`));
  }

  private async readNameFiles(wanted: (file: string) => boolean): Promise<NameRecord[]> {
    const dir = path.join(this.root, 'names');
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
    const dir = path.join(this.root, 'images/sha256');
    const entries = await fsp.readdir(dir);
    return entries
      .filter((hex) => /^[a-f0-9]{64}$/.test(hex) && fs.existsSync(path.join(dir, hex, 'image.json')))
      .sort()
      .map((hex) => `sha256:${hex}` as Digest);
  }

  hasImage(configDigest: Digest): boolean {
    return fs.existsSync(path.join(this.imageDir(configDigest), 'image.json'));
  }

  async readImage(configDigest: Digest): Promise<ImageRecord> {
    return readRecord(
      ImageRecordSchema,
      path.join(this.imageDir(configDigest), 'image.json'),
      () => new NotFoundError(`image ${configDigest} is not in the store`, { digest: configDigest }),
    );
  }

  async readImageConfig(configDigest: Digest): Promise<Buffer> {
    return fsp.readFile(path.join(this.imageDir(configDigest), 'config.json'));
  }

  /** The manifests an image was pulled through, sorted by digest (a stated rule, not directory order). */
  async readImageManifests(configDigest: Digest): Promise<Array<{ record: ManifestRecord; bytes: Buffer }>> {
    const dir = this.imageDir(configDigest);
    const files = (await fsp.readdir(dir)).filter((f) => /^manifest-[a-f0-9]{64}\.json$/.test(f)).sort();
    return Promise.all(
      files.map(async (f) => ({
        record: await readRecord(ManifestRecordSchema, path.join(dir, f), () => new Error('vanished')),
        bytes: await fsp.readFile(path.join(dir, f.slice(0, -'.json'.length))),
      })),
    );
  }

  /** Removes an image record (not its layers: gc does that once nothing references them). */
  async removeImage(configDigest: Digest): Promise<void> {
    const trash = await this.moveToTrash(this.imageDir(configDigest));
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
          path.join(this.root, 'sessions', `${id}.json`),
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

/** A staged layer directory ready for StoreSession.commitLayer. */
export interface StagedLayerFiles {
  /** The DiffID the staged tar stream actually hashed to. */
  diffID: Digest;
  /** The compressed blob it came from, for error messages. */
  blobDigest?: Digest | undefined;
  /** Directory holding the tar-split file; renamed into layers/ on commit. */
  dir: string;
  record: LayerRecord;
  /** Every content object the layer references. */
  objects: ReadonlySet<Digest>;
  /** Chunks of its files a later partial pull may reuse (from a chunked layer's TOC). */
  chunks?: ChunkRef[] | undefined;
}

/**
 * One writer's staging area. Objects, layers and images are prepared under tmp/<id>/ and become
 * visible only through the commit methods, so a pull that fails part-way leaves the store exactly
 * as it was: its staged files go with the session.
 */
export class StoreSession {
  readonly tmpDir: string;
  private counter = 0;
  private pack: PackWriter | undefined;
  private readonly loose = new Map<Digest, string>();
  private objectsCommitted: Promise<void> | undefined;

  constructor(
    readonly store: Store,
    readonly id: string,
  ) {
    this.tmpDir = path.join(store.root, 'tmp', id);
  }

  /** Content available to this session: committed to the store, or staged by this session. */
  hasObject(digest: Digest, size?: number): boolean {
    return this.stagedLocation(digest) !== undefined || this.store.hasObject(digest, size);
  }

  /** Where to read content this session can see (staged packed content: after flushStaged()). */
  locate(digest: Digest, size?: number): ObjectLocation | undefined {
    return this.stagedLocation(digest) ?? this.store.locate(digest, size);
  }

  private stagedLocation(digest: Digest): ObjectLocation | undefined {
    const packed = this.pack?.locate(digest);
    if (packed) return packed;
    const loose = this.loose.get(digest);
    return loose === undefined
      ? undefined
      : { path: loose, offset: 0, size: fs.statSync(loose).size, packed: false };
  }

  /** Stages verified content: small objects into this session's pack, once per digest. */
  async stageSmall(digest: Digest, data: Buffer | readonly Buffer[]): Promise<void> {
    const size = Buffer.isBuffer(data) ? data.length : data.reduce((sum, p) => sum + p.length, 0);
    if (size > PACK_THRESHOLD) throw new Error(`stageSmall: ${size} bytes is over the pack threshold`);
    if (this.hasObject(digest, size)) return;
    this.pack ??= new PackWriter(
      path.join(this.tmpDir, `${Date.now().toString(36).padStart(9, '0')}-${this.id}.pack`),
    );
    await this.pack.add(digest, data);
  }

  /** Adopts a fully written, verified temp file as the large object `digest` (not yet visible). */
  async stageLoose(tempFile: string, digest: Digest, size: number): Promise<void> {
    if (size <= PACK_THRESHOLD) {
      await this.stageSmall(digest, await fsp.readFile(tempFile));
      await fsp.rm(tempFile, { force: true });
      return;
    }
    if (this.hasObject(digest, size)) {
      await fsp.rm(tempFile, { force: true });
      return;
    }
    this.loose.set(digest, tempFile);
  }

  /** Makes staged packed content readable (before rebuilding a tar from it). */
  async flushStaged(): Promise<void> {
    await this.pack?.flush();
  }

  /**
   * Commits a staged layer under the DiffID the caller expects (docs/design.md §6: commit is explicit). The
   * staged layer carries the DiffID its bytes actually hashed to; anything else is refused.
   * The session's objects are moved into place first, so the layer never references missing content.
   */
  async commitLayer(expected: Digest, layer: StagedLayerFiles): Promise<void> {
    if (layer.diffID !== expected) {
      throw new VerificationError(`layer DiffID mismatch: expected ${expected}, got ${layer.diffID}`, {
        ...(layer.blobDigest ? { digest: layer.blobDigest } : {}),
      });
    }
    this.objectsCommitted ??= this.commitObjects();
    await this.objectsCommitted;
    await this.store.placeLayer(expected, layer);
  }

  /** The pack (data first, index last: a pack without its index is invisible) and the loose objects. */
  private async commitObjects(): Promise<void> {
    const finished = await this.pack?.finish();
    if (finished) {
      const name = path.basename(finished.pack, '.pack');
      const packsDir = path.join(this.store.root, 'packs');
      await fsp.rename(finished.pack, path.join(packsDir, `${name}.pack`));
      await fsp.rename(finished.index, path.join(packsDir, `${name}.idx`));
      this.store.packs.add(name);
      this.pack = undefined;
    }
    for (const [digest, temp] of this.loose) {
      // If another pull placed it meanwhile, the content is identical by construction.
      await fsp.rename(temp, this.store.loosePath(digest));
    }
    this.loose.clear();
  }

  /** A fresh directory under this session's staging area. */
  async stagingDir(kind: string): Promise<string> {
    const dir = path.join(this.tmpDir, `${kind}-${this.counter++}`);
    await fsp.mkdir(dir, { recursive: true });
    return dir;
  }

  /** A fresh temp file path under this session's staging area (not created). */
  tempFile(kind: string): string {
    return path.join(this.tmpDir, `${kind}-${this.counter++}`);
  }

  /** Ends the session: whatever was staged and not committed goes, and so does the registration. */
  /** Ends the session; each step runs even if one before it failed (a full disk), the first failure wins. */
  async end(): Promise<void> {
    const steps = [
      () => this.pack?.abort(),
      () => fsp.rm(this.tmpDir, { recursive: true, force: true }),
      () => fsp.rm(path.join(this.store.root, 'sessions', `${this.id}.json`), { force: true }),
    ];
    let failure: unknown;
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}

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
