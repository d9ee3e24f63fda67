/**
 * Where everything in a store lives: the one place that knows the store's paths. Every module of
 * src/store asks a StoreLayout for a path instead of joining names onto the root itself, and
 * STORE_LAYOUT below is the table docs/store.md shows ("Layout"; a test keeps the two identical).
 */
import path from 'node:path';
import { type Digest, hexOf } from '../digest/index.js';

/** The files of a layer directory, committed (layers/sha256/<hex>/) or staged (tmp/<id>/layer-N/). */
export interface LayerFiles {
  dir: string;
  /** layer.json: its record; written last, so its presence makes the directory a layer. */
  record: string;
  /** tarsplit.jsonl.zst: the tar's bytes that are not file content, and its entries. */
  tarSplit: string;
  /** objects.idx: every object its entries name. */
  objects: string;
  /** chunks.idx: chunks of its files a later partial pull may reuse. */
  chunks: string;
}

/** The files of an image directory (images/sha256/<config hex>/). */
export interface ImageFiles {
  dir: string;
  record: string;
  config: string;
}

const VERSION_FILE = 'skiff-store.json';
const PACKS = 'packs';
const OBJECTS = 'objects/sha256';
const LAYERS = 'layers/sha256';
const IMAGES = 'images/sha256';
const NAMES = 'names';
const BLOBS = 'blobs/sha256';
const SESSIONS = 'sessions';
const TMP = 'tmp';
const RESUME = 'resume/sha256';
const LOCK = 'store.lock';
const MANIFEST_FILE = /^manifest-[a-f0-9]{64}$/;

/**
 * The store's layout as docs/store.md shows it: a path pattern and what it holds, indented
 * entries inside the directory above them. Change a path here and in the class below together.
 */
export const STORE_LAYOUT: ReadonlyArray<{ path: string; holds: string }> = [
  {
    path: VERSION_FILE,
    holds:
      '{"format":"skiff-store","version":2}: written last when a store is created; an older one is raised by the first layer committed ("Versions")',
  },
  {
    path: `${PACKS}/NAME.pack, NAME.idx`,
    holds:
      'file contents up to 1 MiB, back to back; the index (sorted digests, offsets, sizes) makes them visible: a pack without its .idx is garbage',
  },
  { path: `${OBJECTS}/ab/<hex>`, holds: 'larger file contents, one read-only file each' },
  { path: `${LAYERS}/<diffid-hex>/`, holds: 'a committed layer:' },
  { path: '  layer.json', holds: 'its record (DiffID, tar size, entry count, where it came from)' },
  {
    path: '  tarsplit.jsonl.zst',
    holds:
      "the tar's bytes that are not file content, interleaved with its entries (which name their content by digest): rebuilds the tar",
  },
  { path: '  objects.idx', holds: 'every object its entries name ("SKIFFOBJ", sorted sha256s)' },
  { path: '  chunks.idx', holds: 'chunks of its files a later partial pull may reuse (chunked layers)' },
  { path: `${IMAGES}/<config-hex>/`, holds: 'an image:' },
  { path: '  image.json', holds: 'its record (config digest, platform, DiffIDs); written last' },
  { path: '  config.json', holds: 'its config, exactly as pulled' },
  { path: '  manifest-<hex>', holds: 'a manifest it was pulled through, exactly as pulled' },
  {
    path: '  manifest-<hex>.json',
    holds: "that manifest's record (digest, media type, its layers and their DiffIDs)",
  },
  {
    path: `${NAMES}/<name>@<platform>.json`,
    holds: 'a name for one platform → an image (both URI-encoded; <name>.json: the older form, still read)',
  },
  { path: `${BLOBS}/<hex>.json`, holds: 'a compressed blob → the DiffID it was verified to carry' },
  { path: `${SESSIONS}/<pid>-<id>.json`, holds: 'a pull in progress' },
  {
    path: `${TMP}/<pid>-<id>/`,
    holds: "a pull's staging area; tmp/rm-*: directories on their way out",
  },
  { path: `${RESUME}/<blob-hex>/`, holds: 'what interrupted pulls fetched and verified (docs/resume.md)' },
  { path: LOCK, holds: 'the store lock (below); store.lock.<token>, store.lock.takeover: its helpers' },
];

/** The layout table as the text docs/store.md shows (paths in one column, wrapped descriptions). */
export function renderStoreLayout(width = 100): string {
  const column = 30;
  const lines: string[] = [];
  for (const { path: where, holds } of STORE_LAYOUT) {
    let line = where.padEnd(column - 1);
    for (const word of holds.split(' ')) {
      if (line.length + 1 + word.length > width && line.trim() !== where.trim()) {
        lines.push(line);
        line = ' '.repeat(column - 1);
      }
      line += ` ${word}`;
    }
    lines.push(line);
  }
  return `${lines.join('\n')}\n`;
}

export class StoreLayout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private at(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** The file whose presence makes a directory a store. */
  get versionFile(): string {
    return this.at(VERSION_FILE);
  }

  /** The directories a new store is made with (the 256 loose-object shards besides). */
  get directories(): string[] {
    return [PACKS, LAYERS, IMAGES, NAMES, BLOBS, SESSIONS, TMP, RESUME].map((d) => this.at(d));
  }

  /** The loose objects' fan-out directories, ab/ for every digest starting "ab". */
  get objectShards(): string[] {
    return Array.from({ length: 256 }, (_, i) => this.objectShard(i.toString(16).padStart(2, '0')));
  }

  // ---- objects -------------------------------------------------------------------------------

  get packsDir(): string {
    return this.at(PACKS);
  }

  packFile(name: string): string {
    return this.at(PACKS, `${name}.pack`);
  }

  packIndexFile(name: string): string {
    return this.at(PACKS, `${name}.idx`);
  }

  get objectsDir(): string {
    return this.at(OBJECTS);
  }

  objectShard(shard: string): string {
    return this.at(OBJECTS, shard);
  }

  /** Where a large (loose) object lives. */
  looseObject(digest: Digest): string {
    const hex = hexOf(digest);
    return this.at(OBJECTS, hex.slice(0, 2), hex);
  }

  // ---- layers --------------------------------------------------------------------------------

  get layersDir(): string {
    return this.at(LAYERS);
  }

  layerDir(diffID: Digest): string {
    return this.at(LAYERS, hexOf(diffID));
  }

  layer(diffID: Digest): LayerFiles {
    return StoreLayout.layerFiles(this.layerDir(diffID));
  }

  /** The files of a layer directory wherever it is (a staged one is renamed into layers/ whole). */
  static layerFiles(dir: string): LayerFiles {
    return {
      dir,
      record: path.join(dir, 'layer.json'),
      tarSplit: path.join(dir, 'tarsplit.jsonl.zst'),
      objects: path.join(dir, 'objects.idx'),
      chunks: path.join(dir, 'chunks.idx'),
    };
  }

  // ---- images --------------------------------------------------------------------------------

  get imagesDir(): string {
    return this.at(IMAGES);
  }

  imageDir(configDigest: Digest): string {
    return this.at(IMAGES, hexOf(configDigest));
  }

  image(configDigest: Digest): ImageFiles {
    return StoreLayout.imageFiles(this.imageDir(configDigest));
  }

  /** The files of an image directory wherever it is (a staged one is renamed into images/ whole). */
  static imageFiles(dir: string): ImageFiles {
    return { dir, record: path.join(dir, 'image.json'), config: path.join(dir, 'config.json') };
  }

  /** A manifest's bytes and its record, in an image directory (committed or staged). */
  static manifestFiles(dir: string, manifestDigest: Digest): { bytes: string; record: string } {
    const bytes = path.join(dir, `manifest-${hexOf(manifestDigest)}`);
    return { bytes, record: `${bytes}.json` };
  }

  /** Whether a file name in an image directory is a manifest record, and so which manifest. */
  static isManifestRecord(file: string): boolean {
    return file.endsWith('.json') && MANIFEST_FILE.test(file.slice(0, -'.json'.length));
  }

  // ---- names and blob records ----------------------------------------------------------------

  get namesDir(): string {
    return this.at(NAMES);
  }

  /**
   * names/<name>@<platform>.json, both URI-encoded: encoding never produces "@", so the file of
   * one name and platform can be told from another's, and from the older form below.
   */
  nameFile(name: string, platform: string): string {
    return this.at(NAMES, `${encodeURIComponent(name)}@${encodeURIComponent(platform)}.json`);
  }

  /** names/<name>.json: the form skiff wrote before names carried a platform (still read). */
  legacyNameFile(name: string): string {
    return this.at(NAMES, `${encodeURIComponent(name)}.json`);
  }

  /** Whether a file in names/ holds a record of `name` (either form). */
  static isNameFileOf(file: string, name: string): boolean {
    const encoded = encodeURIComponent(name);
    return file === `${encoded}.json` || file.startsWith(`${encoded}@`);
  }

  get blobsDir(): string {
    return this.at(BLOBS);
  }

  blobRecord(digest: Digest): string {
    return this.at(BLOBS, `${hexOf(digest)}.json`);
  }

  /** The compressed blob a file in blobs/sha256 records, if the name is one of ours. */
  static blobOfRecord(file: string): Digest | undefined {
    return /^[a-f0-9]{64}\.json$/.test(file) ? `sha256:${file.slice(0, 64)}` : undefined;
  }

  // ---- sessions, staging, resume and the lock ------------------------------------------------

  get sessionsDir(): string {
    return this.at(SESSIONS);
  }

  sessionFile(id: string): string {
    return this.at(SESSIONS, `${id}.json`);
  }

  get tmpDir(): string {
    return this.at(TMP);
  }

  /** A session's staging area. */
  stagingDir(id: string): string {
    return this.at(TMP, id);
  }

  /** Where a directory goes on its way out (one rename; gc empties tmp/). */
  trash(id: string): string {
    return this.at(TMP, `rm-${id}`);
  }

  /** Resumable state of interrupted pulls, one directory per blob (resume.ts). */
  get resumeDir(): string {
    return this.at(RESUME);
  }

  resumeBlobDir(blob: Digest): string {
    return this.at(RESUME, hexOf(blob));
  }

  get lockFile(): string {
    return this.at(LOCK);
  }

  /** The lock a process writes under its own name before linking it into place (lock.ts). */
  lockCandidate(token: string): string {
    return this.at(`${LOCK}.${token}`);
  }

  /** The mutex serialising takeovers of a dead holder's lock. */
  get lockTakeover(): string {
    return this.at(`${LOCK}.takeover`);
  }

  /** Whether a file in the store's root is a lock candidate (store.lock.<token>). */
  static isLockCandidate(file: string): boolean {
    return file.startsWith(`${LOCK}.`) && file !== `${LOCK}.takeover`;
  }
}
