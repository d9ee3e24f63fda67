/**
 * `skiff unpack`: materialises an image's root filesystem from the store, applying layers in
 * order with OCI whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`). Builds in a
 * sibling staging directory and renames it into place, so DIR never holds a half-unpacked tree.
 *
 * The file system work is synchronous and per file as few calls as tar makes: an unpack is
 * thousands of small operations in a row, and a trip through libuv's thread pool for each (lstat,
 * open, write, chown, chmod, utimes) cost several times the operation itself. A file is created
 * with its mode, written from the reader's one window buffer, and given its owner, mode and times
 * through its descriptor, each only when the kernel did not already set it (docs/unpack.md).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Digest } from '../digest/index.js';
import { UsageError, VerificationError } from '../errors/index.js';
import {
  normalizeEntryPath,
  normalizeLinkTarget,
  OPAQUE_WHITEOUT,
  WHITEOUT_PREFIX,
} from '../formats/paths.js';
import { type ContentReader, PACK_THRESHOLD, type Store, type StoredEntry } from '../store/index.js';
import { RootFs } from './rootfs.js';
import { XattrWriter } from './xattrs.js';

const execFileAsync = promisify(execFile);

export interface Skipped {
  path: string;
  what: string;
  why: string;
}

export interface UnpackResult {
  target: string;
  layers: number;
  entries: number;
  /** What could not be applied where skiff runs (device nodes without root, extended attributes), and why. */
  skipped: Skipped[];
}

export async function unpack(
  store: Store,
  diffIDs: readonly Digest[],
  target: string,
): Promise<UnpackResult> {
  // Transient: every read is written out before the next, so one window buffer serves them all.
  const reader = store.openReader({ transient: true });
  try {
    return await unpackWith(store, reader, diffIDs, target);
  } finally {
    reader.close();
  }
}

async function unpackWith(
  store: Store,
  reader: ContentReader,
  diffIDs: readonly Digest[],
  target: string,
): Promise<UnpackResult> {
  const destination = path.resolve(target);
  await assertEmptyOrAbsent(destination);
  const staging = `${destination}.skiff-unpack-${process.pid}`;
  await fsp.rm(staging, { recursive: true, force: true });
  await fsp.mkdir(staging, { recursive: true, mode: 0o755 });
  const result: UnpackResult = { target: destination, layers: diffIDs.length, entries: 0, skipped: [] };
  const unpacker = new Unpacker(reader, new RootFs(staging), result);
  try {
    for (const [index, diffID] of diffIDs.entries()) {
      // Whiteouts hide what the layers below hold: the first layer has none below it.
      if (index > 0) unpacker.applyWhiteouts(checkedEntries(store, diffID, { mentioning: WHITEOUT_PREFIX }));
      for (const entry of checkedEntries(store, diffID)) {
        const pending = unpacker.apply(entry, index === 0);
        if (pending) await pending;
      }
    }
    unpacker.finishDirectories();
    await fsp.rm(destination, { recursive: true, force: true });
    await fsp.rename(staging, destination);
  } catch (error) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw error;
  }
  return result;
}

async function assertEmptyOrAbsent(dir: string): Promise<void> {
  const entries = await fsp.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    if (error.code === 'ENOTDIR') throw new UsageError(`${dir} exists and is not a directory`, { path: dir });
    throw error;
  });
  if (entries.length > 0)
    throw new UsageError(`${dir} is not empty; unpack needs an empty or new directory`, { path: dir });
}

/**
 * A layer's entries, their names checked again as at pull time (no "..", no invalid whiteout):
 * unpack deletes and creates what they name, and a store's files can be edited behind skiff.
 */
function* checkedEntries(
  store: Store,
  diffID: Digest,
  options: { mentioning?: string } = {},
): Generator<StoredEntry> {
  for (const entry of store.layerEntriesSync(diffID, options)) {
    try {
      if (normalizeEntryPath(entry.path, 'stored entry') !== entry.path)
        throw new VerificationError(`stored entry "${entry.path}" is not a normalised path`, {
          path: entry.path,
        });
      if (entry.type === 'hardlink') normalizeLinkTarget(entry.link ?? '', entry.path);
    } catch (error) {
      throw error instanceof VerificationError ? error.withContext({ digest: diffID }) : error;
    }
    yield entry;
  }
}

/** Owners are applied only by root; asked once, not per entry. */
const RUNNING_AS_ROOT = process.getuid?.() === 0;

/** A new regular file, never through what is at its name. */
const CREATE_FLAGS =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

const SPECIAL_BITS = 0o7000;
const S_ISGID = 0o2000;

/** Applies a layer's entries to the tree being built, one at a time and synchronously. */
class Unpacker {
  /** Directory entries, kept for last: writing their children would change their times. */
  private readonly dirs = new Map<string, StoredEntry>();
  private readonly xattrs = new XattrWriter();
  /** Who owns a file the moment unpack creates it: chown is needed only to give it another owner. */
  private readonly creator: { uid: number; gid: number };
  /** The bits open() and mkdir() leave out of a mode: chmod is needed only when one is wanted. */
  private readonly umask = process.umask();

  constructor(
    private readonly reader: ContentReader,
    private readonly rootfs: RootFs,
    private readonly result: UnpackResult,
  ) {
    // A set-group-ID directory gives what is made below it its group (mkdir passes the bit on).
    const root = fs.statSync(rootfs.root);
    this.creator = {
      uid: process.geteuid?.() ?? root.uid,
      gid: root.mode & S_ISGID ? root.gid : (process.getegid?.() ?? root.gid),
    };
  }

  /** Whiteouts apply to the layers below, so they go before this layer's own entries. */
  applyWhiteouts(entries: Iterable<StoredEntry>): void {
    for (const entry of entries) {
      const base = path.posix.basename(entry.path);
      if (!base.startsWith(WHITEOUT_PREFIX)) continue;
      const parent = path.posix.dirname(entry.path);
      const parentRel = parent === '.' ? '' : parent;
      if (base === OPAQUE_WHITEOUT) {
        const dir = this.rootfs.followedSync(parentRel);
        for (const child of readdirOrNone(dir))
          fs.rmSync(path.join(dir, child), { recursive: true, force: true });
        this.rootfs.forget();
        this.forgetBelow(parentRel);
        continue;
      }
      const victim = path.posix.join(parentRel, base.slice(WHITEOUT_PREFIX.length));
      // rootfs refuses a victim outside the root (the whiteout of "..", or of "" or "." in the root).
      fs.rmSync(this.rootfs.existingSync(victim), { recursive: true, force: true });
      this.rootfs.forget();
      this.dirs.delete(victim);
      this.forgetBelow(victim);
    }
  }

  /**
   * One entry of a layer. Returns a promise only for the rare entries made by another program
   * (fifos, device nodes). A whiteout of the first layer hides nothing; it is still checked.
   */
  apply(entry: StoredEntry, firstLayer: boolean): Promise<void> | undefined {
    if (path.posix.basename(entry.path).startsWith(WHITEOUT_PREFIX)) {
      if (firstLayer) this.checkWhiteout(entry);
      return undefined;
    }
    this.result.entries++;
    if (entry.path === '') {
      this.dirs.set('', entry);
      return undefined;
    }
    const dest = this.rootfs.creatableSync(entry.path);
    switch (entry.type) {
      case 'dir':
        this.makeDirectory(entry.path, dest);
        this.dirs.set(entry.path, entry);
        return undefined;
      case 'file':
        this.createFile(entry, dest);
        return undefined;
      case 'symlink':
        this.createReplacing(dest, () => fs.symlinkSync(entry.link ?? '', dest));
        this.applyMetadata(dest, entry);
        return undefined;
      case 'hardlink': {
        const target = this.rootfs.existingSync(entry.link ?? '');
        this.createReplacing(dest, () => fs.linkSync(target, dest));
        return undefined; // a hard link shares its target's metadata
      }
      case 'fifo':
        return this.makeSpecial(entry, dest, 'mkfifo', [dest]);
      case 'char':
      case 'block':
        if (!RUNNING_AS_ROOT) {
          this.result.skipped.push({ path: entry.path, what: `${entry.type} device`, why: 'needs root' });
          return undefined;
        }
        return this.makeSpecial(entry, dest, 'mknod', [
          dest,
          entry.type === 'char' ? 'c' : 'b',
          String(entry.devmajor ?? 0),
          String(entry.devminor ?? 0),
        ]);
    }
  }

  /** Directories last, deepest first, so writing children did not disturb their modes and times. */
  finishDirectories(): void {
    const ordered = [...this.dirs.keys()]
      .map((rel) => ({ rel, depth: rel === '' ? 0 : rel.split('/').length }))
      .sort((a, b) => b.depth - a.depth || (a.rel < b.rel ? 1 : a.rel > b.rel ? -1 : 0));
    for (const { rel } of ordered) {
      const entry = this.dirs.get(rel)!;
      const dest = rel === '' ? this.rootfs.root : this.rootfs.existingSync(rel);
      const stat = fs.lstatSync(dest, { throwIfNoEntry: false });
      if (!stat?.isDirectory()) continue;
      this.applyMetadata(dest, entry);
    }
  }

  /** The path checks a whiteout would meet, for one that has nothing to hide. */
  private checkWhiteout(entry: StoredEntry): void {
    const base = path.posix.basename(entry.path);
    if (base === OPAQUE_WHITEOUT) return;
    const parent = path.posix.dirname(entry.path);
    this.rootfs.existingSync(
      path.posix.join(parent === '.' ? '' : parent, base.slice(WHITEOUT_PREFIX.length)),
    );
  }

  /**
   * A regular file: created with its mode, written from the reader's window, its owner, mode,
   * extended attributes and times set through the descriptor. Content over the pack threshold is
   * a loose object, copied by the kernel (the extents may be shared).
   */
  private createFile(entry: StoredEntry, dest: string): void {
    const ref =
      entry.digest && entry.size > 0
        ? { digest: entry.digest, size: entry.size, path: entry.path }
        : undefined;
    if (ref && ref.size > PACK_THRESHOLD) {
      this.createReplacing(dest, () => this.reader.copyTo(ref, dest));
      this.applyMetadata(dest, entry);
      return;
    }
    const fd = this.createReplacing(dest, () => fs.openSync(dest, CREATE_FLAGS, entry.mode & 0o7777));
    try {
      if (ref) writeAll(fd, this.reader.read(ref));
      if (RUNNING_AS_ROOT && this.needsOwner(entry)) fs.fchownSync(fd, entry.uid, entry.gid);
      if (this.needsMode(entry)) fs.fchmodSync(fd, entry.mode);
      if (entry.xattrs) this.xattrs.apply(dest, entry, this.result.skipped);
      fs.futimesSync(fd, entry.mtime, entry.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  private needsOwner(entry: StoredEntry): boolean {
    return entry.uid !== this.creator.uid || entry.gid !== this.creator.gid;
  }

  /** Special bits are set explicitly (a chown clears set-user-ID); the rest only if umask hid them. */
  private needsMode(entry: StoredEntry): boolean {
    return (entry.mode & SPECIAL_BITS) !== 0 || (entry.mode & this.umask) !== 0;
  }

  /** Owners before modes (chown clears setuid bits), extended attributes, times last. */
  private applyMetadata(dest: string, entry: StoredEntry): void {
    if (RUNNING_AS_ROOT) fs.lchownSync(dest, entry.uid, entry.gid);
    if (entry.type !== 'symlink') fs.chmodSync(dest, entry.mode);
    if (entry.xattrs) this.xattrs.apply(dest, entry, this.result.skipped);
    fs.lutimesSync(dest, entry.mtime, entry.mtime);
  }

  /** A fifo or device node, made by the system's tool (Node has no mknod). */
  private async makeSpecial(entry: StoredEntry, dest: string, tool: string, args: string[]): Promise<void> {
    this.removeExisting(dest);
    await execFileAsync(tool, args);
    this.applyMetadata(dest, entry);
  }

  /**
   * Never write through what is there: `create` makes `dest` exclusively, and what a lower layer
   * left at that name is removed and the creation tried again. Trying first spares an lstat per
   * entry, and nearly every name is new.
   */
  private createReplacing<T>(dest: string, create: () => T): T {
    try {
      return create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      fs.rmSync(dest, { recursive: true, force: true });
      this.rootfs.forget();
      return create();
    }
  }

  private removeExisting(dest: string): void {
    if (!fs.lstatSync(dest, { throwIfNoEntry: false })) return;
    fs.rmSync(dest, { recursive: true, force: true });
    this.rootfs.forget();
  }

  /** A directory entry: kept if a lower layer made it, replacing a non-directory there. */
  private makeDirectory(relative: string, dest: string): void {
    try {
      fs.mkdirSync(dest, { mode: 0o755 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (fs.lstatSync(dest).isDirectory()) return;
      fs.rmSync(dest, { force: true });
      fs.mkdirSync(dest, { mode: 0o755 });
    }
    this.rootfs.remember(relative, dest);
  }

  private forgetBelow(prefix: string): void {
    for (const key of this.dirs.keys())
      if (prefix === '' || key.startsWith(`${prefix}/`)) this.dirs.delete(key);
  }
}

function readdirOrNone(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** A write may be short; the rest follows. */
function writeAll(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}
