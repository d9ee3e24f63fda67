/**
 * Packed objects. Creating a file costs far more than writing its bytes on many filesystems (here
 * ~0.5 ms each: 9k small files would cost 4.5 s before anything else), so objects up to
 * PACK_THRESHOLD are appended to one pack file per pull instead of one file each. A pack comes
 * with a sorted binary index; lookups are binary searches in memory, not stats.
 *
 *   NAME.pack   the contents, back to back
 *   NAME.idx    "SKIFFIDX" u32 version u32 count, then count × (32-byte sha256, u64 offset, u64 size),
 *               sorted by digest
 *
 * Several packs may hold the same content (two pulls at once). The stated rule: the pack whose
 * name sorts first wins; gc keeps only that copy.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import type { StoreLayout } from './layout.js';
import { encodeTable, findRecord, TABLE_HEADER, writeU64 } from './sorted-records.js';

/** Objects up to this size are packed; larger ones are stored loose, one file each. */
export const PACK_THRESHOLD = 1024 * 1024;
const MAGIC = 'SKIFFIDX';
const ENTRY = 48;
/** A batch: appends are copied into a buffer of this size, written once full (or flushed). */
const BATCH_BYTES = PACK_THRESHOLD;
/** Batches that may wait for the disk (one being written, one behind it) before appends wait. */
const MAX_QUEUED = 2;

export interface PackEntry {
  digest: Digest;
  offset: number;
  size: number;
}

/** Where an object's bytes are: a loose file, or a range of a pack. */
export interface ObjectLocation {
  path: string;
  offset: number;
  size: number;
  packed: boolean;
}

export function encodeIndex(entries: Iterable<PackEntry>): Buffer {
  return encodeTable(MAGIC, ENTRY, entries, (out, at, e) => {
    out.write(e.digest.slice(7), at, 'hex');
    writeU64(out, e.offset, at + 32);
    writeU64(out, e.size, at + 40);
  });
}

/**
 * One vectored write per batch: the pieces go to the kernel without being joined first. A write
 * may take only part of them (a file system filling up): the rest is written again, and the file
 * system then says why it cannot take more (ENOSPC), which is what the user must be told.
 */
async function writeAll(handle: fsp.FileHandle, pieces: readonly Buffer[], position: number): Promise<void> {
  let rest = pieces;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest as Buffer[], at);
    at += bytesWritten;
    rest = withoutFirst(rest, bytesWritten);
  }
}

/** The pieces left after the first `bytes` bytes (views, not copies). */
function withoutFirst(pieces: readonly Buffer[], bytes: number): readonly Buffer[] {
  let skip = bytes;
  let i = 0;
  while (i < pieces.length && skip >= pieces[i]!.length) skip -= pieces[i++]!.length;
  if (i === pieces.length) return [];
  return [pieces[i]!.subarray(skip), ...pieces.slice(i + 1)];
}

/** A loaded pack index: binary search over the raw bytes, no per-entry objects. */
export class PackIndex {
  readonly count: number;

  constructor(
    readonly packPath: string,
    private readonly bytes: Buffer,
  ) {
    if (bytes.toString('latin1', 0, 8) !== MAGIC || bytes.readUInt32LE(8) !== 1) {
      throw new VerificationError(`${packPath}: not a skiff pack index`, { path: packPath });
    }
    this.count = bytes.readUInt32LE(12);
    if (bytes.length !== TABLE_HEADER + this.count * ENTRY)
      throw new VerificationError(`${packPath}: truncated pack index`, { path: packPath });
  }

  find(digest: Digest): ObjectLocation | undefined {
    const at = this.recordOf(Buffer.from(digest.slice(7), 'hex'));
    return at < 0 ? undefined : this.locationAt(at);
  }

  /** The byte offset of the record of the raw 32-byte sha256 `key`, or -1. */
  recordOf(key: Buffer): number {
    return findRecord(this.bytes, TABLE_HEADER, ENTRY, this.count, key);
  }

  /** Where the object of the record at byte offset `at` is. */
  locationAt(at: number): ObjectLocation {
    return {
      path: this.packPath,
      offset: Number(this.bytes.readBigUInt64LE(at + 32)),
      size: Number(this.bytes.readBigUInt64LE(at + 40)),
      packed: true,
    };
  }

  *entries(): Generator<PackEntry> {
    for (let i = 0; i < this.count; i++) {
      const at = TABLE_HEADER + i * ENTRY;
      yield {
        digest: `sha256:${this.bytes.toString('hex', at, at + 32)}`,
        offset: Number(this.bytes.readBigUInt64LE(at + 32)),
        size: Number(this.bytes.readBigUInt64LE(at + 40)),
      };
    }
  }
}

/**
 * A packed object as one number: its index's id times REF_SPAN plus its record's byte offset in
 * that index (an index of under 4 GiB: 89 million objects), exact in a double. -1: not packed.
 */
export type PackedRef = number;
const REF_SPAN = 2 ** 32;

/** The committed packs of a store, loaded on first use, searched in name order. */
export class PackSet {
  private loaded: PackIndex[] | undefined;
  /** A pull asks about the same digests several times (plan, rebuild, ingest): answers are kept. */
  private readonly found = new Map<Digest, ObjectLocation>();
  private readonly ids = new Map<PackIndex, number>();
  private readonly byId: PackIndex[] = [];

  constructor(private readonly layout: StoreLayout) {}

  locate(digest: Digest): ObjectLocation | undefined {
    const known = this.found.get(digest);
    if (known) return known;
    for (const index of this.indexes()) {
      const location = index.find(digest);
      if (location) {
        this.found.set(digest, location);
        return location;
      }
    }
    return undefined;
  }

  has(digest: Digest): boolean {
    return this.locate(digest) !== undefined;
  }

  /**
   * The packed object of the raw 32-byte sha256 `key` as a number (a `PackedRef`), or -1: no
   * digest string, no location object and no entry in `found`, for a caller that asks about every
   * file of a layer and keeps the answers itself (a partial pull's plan).
   */
  refOf(key: Buffer): PackedRef {
    for (const index of this.indexes()) {
      const at = index.recordOf(key);
      if (at >= 0) return this.idOf(index) * REF_SPAN + at;
    }
    return -1;
  }

  /** Where the object a `refOf` answer names is (its pack stays while a pull runs: gc waits). */
  locationOf(ref: PackedRef): ObjectLocation {
    const index = this.byId[Math.floor(ref / REF_SPAN)];
    if (!index) throw new Error(`no pack index for object reference ${ref}`);
    return index.locationAt(ref % REF_SPAN);
  }

  /** Registers a pack this process just committed. */
  add(name: string): void {
    if (!this.loaded) return;
    this.loaded.push(loadIndex(this.layout, name));
    this.loaded.sort((a, b) => (a.packPath < b.packPath ? -1 : 1));
  }

  indexes(): PackIndex[] {
    this.loaded ??= packNames(this.layout).map((name) => loadIndex(this.layout, name));
    return this.loaded;
  }

  /** Forgets what was loaded (after gc rewrote packs). */
  reset(): void {
    this.loaded = undefined;
    this.found.clear();
    this.ids.clear();
    this.byId.length = 0;
  }

  /** A number for each loaded index that stays while it is loaded (`loaded` is re-sorted by add). */
  private idOf(index: PackIndex): number {
    let id = this.ids.get(index);
    if (id === undefined) {
      id = this.byId.push(index) - 1;
      this.ids.set(index, id);
    }
    return id;
  }
}

/** Pack names (without extension) that have an index, sorted: a pack without its .idx is invisible. */
export function packNames(layout: StoreLayout): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(layout.packsDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.idx'))
    .map((n) => n.slice(0, -4))
    .sort();
}

/** A pack's index, loaded; a missing or damaged one throws. */
export function loadIndex(layout: StoreLayout, name: string): PackIndex {
  return new PackIndex(layout.packFile(name), fs.readFileSync(layout.packIndexFile(name)));
}

/**
 * One session's pack, being written: appends are batched into large writes. Entries become
 * readable once flushed (`flush`), and visible to other processes only when committed.
 */
export class PackWriter {
  private readonly entries = new Map<Digest, PackEntry>();
  /**
   * Appends are copied into this buffer until the next would not fit, then written whole. Copied,
   * not kept as the caller's views: a view of a decoder's 256 KiB output window keeps the whole
   * window alive until its batch is written (docs/memory.md).
   */
  private staging: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  /** Staging buffers whose batch is on disk, for the next batches. */
  private spare: Buffer[] = [];
  private pendingBytes = 0;
  /** Batches handed to the chain and not yet written. */
  private queued = 0;
  private size = 0;
  private written = 0;
  private handle: fsp.FileHandle | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly packPath: string) {}

  has(digest: Digest): boolean {
    return this.entries.has(digest);
  }

  get count(): number {
    return this.entries.size;
  }

  /** Where a staged object is; readable once flush() has resolved. */
  locate(digest: Digest): ObjectLocation | undefined {
    const entry = this.entries.get(digest);
    return entry && { path: this.packPath, offset: entry.offset, size: entry.size, packed: true };
  }

  /**
   * Appends an object (once per digest), given whole or in pieces; resolves once it is copied into
   * a batch, after waiting while MAX_QUEUED batches are not yet on disk (and, if it filled a
   * batch, once that batch is on disk). The pieces are copied: the caller may drop them.
   */
  async add(digest: Digest, data: Buffer | readonly Buffer[]): Promise<void> {
    // A layer stages many files at once, and several layers share this pack: without a bound,
    // batches queued behind a slow disk (nine of them seen, each pinning the decoder windows its
    // pieces were views of) held tens of MiB (docs/memory.md).
    while (this.queued >= MAX_QUEUED) await this.chain;
    if (this.entries.has(digest)) return;
    const pieces = Buffer.isBuffer(data) ? [data] : data;
    const size = pieces.reduce((sum, p) => sum + p.length, 0);
    // The batch this object does not fit in goes to the disk first.
    const full = this.pendingBytes + size > this.staging.length ? this.flush() : undefined;
    this.place(digest, pieces, size);
    if (full) await full;
    else if (this.pendingBytes === this.staging.length) await this.flush();
  }

  private place(digest: Digest, pieces: readonly Buffer[], size: number): void {
    // Larger than a batch (not an object the store packs): a buffer of its own.
    if (size > this.staging.length) this.staging = Buffer.allocUnsafeSlow(size);
    this.entries.set(digest, { digest, offset: this.size, size });
    this.size += size;
    for (const piece of pieces) {
      piece.copy(this.staging, this.pendingBytes);
      this.pendingBytes += piece.length;
    }
  }

  /** Writes everything appended so far. */
  flush(): Promise<void> {
    if (this.pendingBytes === 0) return this.chain;
    const batch = this.staging;
    const bytes = this.pendingBytes;
    this.staging = this.spare.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.pendingBytes = 0;
    this.queued++;
    this.chain = this.chain.then(async () => {
      try {
        this.handle ??= await fsp.open(this.packPath, 'wx', 0o444);
        await writeAll(this.handle, [batch.subarray(0, bytes)], this.written);
        this.written += bytes;
        if (batch.length === BATCH_BYTES) this.spare.push(batch);
      } finally {
        this.queued--;
      }
    });
    return this.chain;
  }

  /** Finishes the pack and writes its index beside it; undefined when nothing was packed. */
  async finish(): Promise<{ pack: string; index: string } | undefined> {
    await this.flush();
    await this.handle?.close();
    this.handle = undefined;
    if (this.entries.size === 0) return undefined;
    const index = `${this.packPath.slice(0, -'.pack'.length)}.idx`;
    await fsp.writeFile(index, encodeIndex(this.entries.values()), { mode: 0o444 });
    return { pack: this.packPath, index };
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}

/** Reads part of an object: `length` bytes from `start` within it. */
export async function readObjectRange(
  location: ObjectLocation,
  start: number,
  length: number,
): Promise<Buffer> {
  const reader = await ObjectRangeReader.open(location);
  try {
    return await reader.read(start, Buffer.allocUnsafe(length), length);
  } finally {
    await reader.close();
  }
}

/**
 * An object opened once for many range reads into the caller's buffer: a large file's held run
 * of chunks is read in pieces without an open, a close and a new buffer per piece.
 */
export class ObjectRangeReader {
  private constructor(
    private readonly location: ObjectLocation,
    private readonly handle: fsp.FileHandle,
  ) {}

  static async open(location: ObjectLocation): Promise<ObjectRangeReader> {
    const handle = await fsp.open(location.path, 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? missing(location.path) : error;
    });
    return new ObjectRangeReader(location, handle);
  }

  /** Up to `length` bytes from `start` within the object, read into `into`: a view of it. */
  async read(start: number, into: Buffer, length: number): Promise<Buffer> {
    const { bytesRead } = await this.handle.read(into, 0, length, this.location.offset + start);
    return into.subarray(0, bytesRead);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

interface Window {
  path: string;
  start: number;
  bytes: Buffer;
}

/**
 * Reads many objects without reopening the same pack for each: one descriptor per pack file, kept
 * until close(). Packed objects are read through a 1 MiB window per pack: a pack holds a layer's
 * files in tar order, which is the order rebuilds and unpacks read them, so one read serves many.
 * A read that jumps back (content shared by two paths) reads just that object and keeps the window.
 *
 * Reads are synchronous: objects are read back right after they were written or from the page
 * cache, where a 1 MiB read takes a fraction of a millisecond, while a trip through libuv's thread
 * pool per read cost a partial pull of a 9k-file layer about 0.9 s of its 3.5 s.
 */
export class ObjectReader {
  private static readonly WINDOW = 1024 * 1024;
  private readonly handles = new Map<string, number>();
  private readonly windows = new Map<string, Window>();
  /** A transient reader's two windows, most recently used first, each in a buffer of its own. */
  private readonly reused: Array<Window & { buffer: Buffer }> = [];

  /**
   * `transient`: the caller uses what read() returns before its next call (unpack writes it out),
   * so two window buffers serve every read, instead of a fresh 1 MiB per window for the garbage
   * collector to find (on a 9k-file unpack that was ~10 full collections, a fifth of its time).
   * Two: content shared by several paths is read back from where it was first stored, and a
   * second window there serves the run of them (a tree copied whole within a layer) while the
   * first still holds where the layer goes on.
   */
  constructor(private readonly options: { transient?: boolean } = {}) {}

  /** An object whole: meant for small ones (see pieces for the rest). */
  read(location: ObjectLocation): Buffer {
    if (!location.packed) return missingAsDamage(location.path, () => fs.readFileSync(location.path));
    if (this.options.transient && location.size <= ObjectReader.WINDOW) return this.readReused(location);
    const window = this.windows.get(location.path);
    if (window) {
      const from = location.offset - window.start;
      if (from >= 0 && from + location.size <= window.bytes.length)
        return window.bytes.subarray(from, from + location.size);
      if (from < 0) return this.readExact(location);
    }
    const fresh = this.readWindow(
      location.path,
      location.offset,
      Math.max(ObjectReader.WINDOW, location.size),
    );
    if (fresh.bytes.length < location.size) throw truncated(location, location.offset);
    this.windows.set(location.path, fresh);
    return fresh.bytes.subarray(0, location.size);
  }

  /** An object of any size, a window's worth at a time: memory stays bounded. */
  *pieces(location: ObjectLocation): Generator<Buffer> {
    const fd = location.packed ? this.descriptor(location.path) : openObjectFile(location.path);
    try {
      for (let done = 0; done < location.size; ) {
        const length = Math.min(ObjectReader.WINDOW, location.size - done);
        const piece = Buffer.allocUnsafe(length);
        const read = fs.readSync(fd, piece, 0, length, location.offset + done);
        if (read === 0) throw truncated(location, location.offset + done);
        done += read;
        yield read === length ? piece : piece.subarray(0, read);
      }
    } finally {
      if (!location.packed) fs.closeSync(fd);
    }
  }

  private readReused(location: ObjectLocation): Buffer {
    for (const [i, window] of this.reused.entries()) {
      const from = location.offset - window.start;
      if (window.path !== location.path || from < 0 || from + location.size > window.bytes.length) continue;
      if (i > 0) this.reused.unshift(...this.reused.splice(i, 1));
      return window.bytes.subarray(from, from + location.size);
    }
    // The least recently used window's buffer takes the new one.
    const buffer =
      this.reused.length < 2 ? Buffer.allocUnsafe(ObjectReader.WINDOW) : this.reused.pop()!.buffer;
    const read = fs.readSync(this.descriptor(location.path), buffer, 0, buffer.length, location.offset);
    if (read < location.size) throw truncated(location, location.offset);
    this.reused.unshift({
      path: location.path,
      start: location.offset,
      bytes: buffer.subarray(0, read),
      buffer,
    });
    return buffer.subarray(0, location.size);
  }

  private readExact(location: ObjectLocation): Buffer {
    const { bytes } = this.readWindow(location.path, location.offset, location.size);
    if (bytes.length !== location.size) throw truncated(location, location.offset);
    return bytes;
  }

  private readWindow(file: string, start: number, length: number): Window {
    const buffer = Buffer.allocUnsafe(length);
    const bytesRead = fs.readSync(this.descriptor(file), buffer, 0, length, start);
    return { path: file, start, bytes: buffer.subarray(0, bytesRead) };
  }

  private descriptor(file: string): number {
    let fd = this.handles.get(file);
    if (fd === undefined) {
      fd = openObjectFile(file);
      this.handles.set(file, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.handles.values()) fs.closeSync(fd);
    this.handles.clear();
    this.windows.clear();
    this.reused.length = 0;
  }
}

/** Opens a pack or loose object file for reading; a missing one is a damaged store (exit 4). */
export function openObjectFile(file: string): number {
  return missingAsDamage(file, () => fs.openSync(file, 'r'));
}

/** A pack or loose object the indexes name but the disk lacks: the store is damaged (exit 4). */
function missingAsDamage<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missing(file);
    throw error;
  }
}

function missing(file: string): VerificationError {
  return new VerificationError(`${file}: object file missing (store damaged?)`, { path: file });
}

function truncated(location: ObjectLocation, at: number): VerificationError {
  return new VerificationError(`${location.path}: object truncated at offset ${at}`, { path: location.path });
}
