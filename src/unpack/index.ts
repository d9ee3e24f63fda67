/**
 * `skiff unpack`: materialises an image's root filesystem from the store, applying layers in
 * order with OCI whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`). Builds in a
 * sibling staging directory and renames it into place, so DIR never holds a half-unpacked tree.
 *
 * The file system work is synchronous: an unpack is thousands of small operations in a row, and
 * a trip through libuv's thread pool for each (lstat, open, write, chown, chmod, utimes) cost
 * several times the operation itself (docs/store.md, "Unpack").
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
import type { ContentReader, Store, StoredEntry } from '../store/index.js';
import { RootFs } from './rootfs.js';

const execFileAsync = promisify(execFile);

export interface UnpackResult {
  target: string;
  layers: number;
  entries: number;
  /** What could not be applied where skiff runs (device nodes without root, extended attributes). */
  skipped: Array<{ path: string; what: string }>;
}

export async function unpack(
  store: Store,
  diffIDs: readonly Digest[],
  target: string,
): Promise<UnpackResult> {
  const reader = store.openReader();
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
  const rootfs = new RootFs(staging);
  const result: UnpackResult = { target: destination, layers: diffIDs.length, entries: 0, skipped: [] };
  const dirs = new Map<string, StoredEntry>();
  try {
    for (const diffID of diffIDs) {
      await applyWhiteouts(store, diffID, rootfs, dirs);
      for await (const entry of checkedEntries(store, diffID)) {
        const base = path.posix.basename(entry.path);
        if (base.startsWith(WHITEOUT_PREFIX)) continue;
        await applyEntry(reader, rootfs, entry, dirs, result);
        result.entries++;
      }
    }
    await applyDirMetadata(rootfs, dirs);
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
async function* checkedEntries(
  store: Store,
  diffID: Digest,
  options: { mentioning?: string } = {},
): AsyncGenerator<StoredEntry> {
  for await (const entry of store.layerEntries(diffID, options)) {
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

/** Whiteouts apply to the layers below, so they go before this layer's own entries. */
async function applyWhiteouts(
  store: Store,
  diffID: Digest,
  rootfs: RootFs,
  dirs: Map<string, StoredEntry>,
): Promise<void> {
  for await (const entry of checkedEntries(store, diffID, { mentioning: WHITEOUT_PREFIX })) {
    const base = path.posix.basename(entry.path);
    if (!base.startsWith(WHITEOUT_PREFIX)) continue;
    const parent = path.posix.dirname(entry.path);
    const parentRel = parent === '.' ? '' : parent;
    if (base === OPAQUE_WHITEOUT) {
      const dir = rootfs.followedSync(parentRel);
      for (const child of await fsp.readdir(dir).catch(() => [] as string[]))
        await fsp.rm(path.join(dir, child), { recursive: true, force: true });
      rootfs.forget();
      forgetBelow(dirs, parentRel);
      continue;
    }
    const victim = path.posix.join(parentRel, base.slice(WHITEOUT_PREFIX.length));
    // rootfs refuses a victim outside the root (the whiteout of "..", or of "" or "." in the root).
    await fsp.rm(rootfs.existingSync(victim), { recursive: true, force: true });
    rootfs.forget();
    dirs.delete(victim);
    forgetBelow(dirs, victim);
  }
}

function forgetBelow(dirs: Map<string, StoredEntry>, prefix: string): void {
  for (const key of dirs.keys()) if (prefix === '' || key.startsWith(`${prefix}/`)) dirs.delete(key);
}

async function applyEntry(
  reader: ContentReader,
  rootfs: RootFs,
  entry: StoredEntry,
  dirs: Map<string, StoredEntry>,
  result: UnpackResult,
): Promise<void> {
  if (entry.path === '') {
    dirs.set('', entry);
    return;
  }
  const dest = rootfs.creatableSync(entry.path);
  if (entry.type === 'dir') {
    makeDirectory(rootfs, entry.path, dest);
    dirs.set(entry.path, entry);
    return;
  }
  switch (entry.type) {
    case 'file':
      createReplacing(rootfs, dest, () => writeContent(reader, entry, dest));
      break;
    case 'symlink':
      createReplacing(rootfs, dest, () => fs.symlinkSync(entry.link ?? '', dest));
      break;
    case 'hardlink': {
      const target = rootfs.existingSync(entry.link ?? '');
      createReplacing(rootfs, dest, () => fs.linkSync(target, dest));
      return; // a hard link shares its target's metadata
    }
    case 'fifo':
      removeExisting(rootfs, dest);
      await execFileAsync('mkfifo', [dest]);
      break;
    case 'char':
    case 'block':
      if (!RUNNING_AS_ROOT) {
        result.skipped.push({ path: entry.path, what: `${entry.type} device (needs root)` });
        return;
      }
      removeExisting(rootfs, dest);
      await execFileAsync('mknod', [
        dest,
        entry.type === 'char' ? 'c' : 'b',
        String(entry.devmajor ?? 0),
        String(entry.devminor ?? 0),
      ]);
      break;
  }
  applyMetadata(dest, entry);
  if (entry.xattrs && Object.keys(entry.xattrs).length > 0) {
    result.skipped.push({
      path: entry.path,
      what: `extended attributes (${Object.keys(entry.xattrs).join(', ')})`,
    });
  }
}

/**
 * Never write through what is there: `create` makes `dest` exclusively, and what a lower layer
 * left at that name is removed and the creation tried again. Trying first spares an lstat per
 * entry, and nearly every name is new.
 */
function createReplacing(rootfs: RootFs, dest: string, create: () => void): void {
  try {
    create();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    fs.rmSync(dest, { recursive: true, force: true });
    rootfs.forget();
    create();
  }
}

function removeExisting(rootfs: RootFs, dest: string): void {
  if (!fs.lstatSync(dest, { throwIfNoEntry: false })) return;
  fs.rmSync(dest, { recursive: true, force: true });
  rootfs.forget();
}

/** A directory entry: kept if a lower layer made it, replacing a non-directory there. */
function makeDirectory(rootfs: RootFs, relative: string, dest: string): void {
  try {
    fs.mkdirSync(dest, { mode: 0o755 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (fs.lstatSync(dest).isDirectory()) return;
    fs.rmSync(dest, { force: true });
    fs.mkdirSync(dest, { mode: 0o755 });
  }
  rootfs.remember(relative, dest);
}

/** A file's content, written as a new file (the store copies loose objects, so extents may be shared). */
function writeContent(reader: ContentReader, entry: StoredEntry, dest: string): void {
  if (entry.size === 0 || !entry.digest) fs.writeFileSync(dest, '', { flag: 'wx' });
  else reader.copyTo({ digest: entry.digest, size: entry.size, path: entry.path }, dest);
}

/** Owners are applied only by root; asked once, not per entry. */
const RUNNING_AS_ROOT = process.getuid?.() === 0;

/** Owners before modes (chown clears setuid bits), times last. */
function applyMetadata(dest: string, entry: StoredEntry): void {
  if (RUNNING_AS_ROOT) fs.lchownSync(dest, entry.uid, entry.gid);
  if (entry.type !== 'symlink') fs.chmodSync(dest, entry.mode);
  fs.lutimesSync(dest, entry.mtime, entry.mtime);
}

/** Directories last, deepest first, so writing children did not disturb their modes and times. */
async function applyDirMetadata(rootfs: RootFs, dirs: Map<string, StoredEntry>): Promise<void> {
  const ordered = [...dirs.keys()]
    .map((rel) => ({ rel, depth: rel === '' ? 0 : rel.split('/').length }))
    .sort((a, b) => b.depth - a.depth || (a.rel < b.rel ? 1 : a.rel > b.rel ? -1 : 0));
  for (const { rel } of ordered) {
    const entry = dirs.get(rel)!;
    const dest = rel === '' ? rootfs.root : rootfs.existingSync(rel);
    const stat = fs.lstatSync(dest, { throwIfNoEntry: false });
    if (!stat?.isDirectory()) continue;
    applyMetadata(dest, entry);
  }
}
