/**
 * Turns a layer's tar stream into a staged layer: every regular file's content becomes (or is
 * found as) an object, the rest of the tar goes into the tar-split, and the whole stream is hashed
 * into the DiffID the caller will commit under. One pass, bounded memory.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Digest, Hasher } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { ancestors, normalizeEntryPath, normalizeLinkTarget } from '../formats/paths.js';
import { readTar, type TarEntry } from '../formats/tar.js';
import { TaskWindow } from '../util/window.js';
import type { ChunkRef, LayerRecord, StoredEntry } from './records.js';
import type { StagedLayerFiles, StoreSession } from './store.js';
import { LAYER_TARSPLIT } from './store.js';
import { TarSplitWriter } from './tarsplit.js';

/** Files up to this size are hashed in memory and written in one call; larger ones stream to disk. */
const SMALL_FILE = 256 * 1024;
/** Object writes in flight at once. */
const WRITE_WINDOW = 32;

export interface IngestOptions {
  session: StoreSession;
  /** How the layer was obtained, for the record and for error messages. */
  source?: { blobDigest: Digest; mediaType: string; format: string; method: string };
  provenance: 'publisher' | 'computed';
  /**
   * Content digests the caller already knows (a TOC, or objects a partial pull assembled), by
   * entry path. A large file whose object already exists is then only hashed, never rewritten;
   * a known digest that the content does not match fails the layer.
   */
  knownDigest?: (path: string) => Digest | undefined;
  /**
   * Content named by knownDigest and already held is neither hashed nor rewritten: the caller
   * vouches for it with a check that covers every byte (a partial pull's DiffID check).
   */
  trustKnownObjects?: boolean;
  /** Chunks of this layer's files (from a chunked layer's TOC), recorded for later partial pulls. */
  chunks?: (byPath: ReadonlyMap<string, Digest>) => ChunkRef[];
  /** Called with the size of each tar chunk as it is consumed (progress). */
  onTarBytes?: (bytes: number) => void;
}

export interface StagedLayer extends StagedLayerFiles {
  tarSize: number;
}

/** Ingests a tar stream into the session's staging area; commit it with store.commitLayer. */
export async function ingestLayer(
  tar: AsyncIterable<Buffer | Uint8Array>,
  options: IngestOptions,
): Promise<StagedLayer> {
  const { session } = options;
  const dir = await session.stagingDir('layer');
  const tarsplit = new TarSplitWriter(path.join(dir, LAYER_TARSPLIT));
  const writes = new TaskWindow(WRITE_WINDOW);
  const diff = new Hasher();
  const guard = new PathGuard();
  const fileDigests = new Map<string, Digest>();
  const objects = new Set<Digest>();
  let entries = 0;
  let contentBytes = 0;
  let file: FileSink | undefined;

  async function* hashed(): AsyncGenerator<Buffer | Uint8Array> {
    for await (const chunk of tar) {
      diff.update(chunk);
      options.onTarBytes?.(chunk.length);
      yield chunk;
    }
  }

  try {
    for await (const token of readTar(hashed())) {
      switch (token.kind) {
        case 'raw':
          tarsplit.raw(token.bytes);
          break;
        case 'entry': {
          const stored = guard.admit(token.entry);
          entries++;
          if (stored.type === 'file' && stored.size > 0) {
            file = new FileSink(
              session,
              stored,
              options.knownDigest?.(stored.path),
              options.trustKnownObjects ?? false,
            );
            contentBytes += stored.size;
          } else {
            await tarsplit.entry(stored);
          }
          break;
        }
        case 'data':
          if (file) await file.write(token.bytes);
          break;
        case 'end-entry':
          if (file) {
            const done = file;
            file = undefined;
            const digest = await done.finish(writes);
            done.entry.digest = digest;
            fileDigests.set(done.entry.path, digest);
            objects.add(digest);
            await tarsplit.entry(done.entry);
          }
          break;
      }
    }
    await writes.drain();
    await tarsplit.finish();
  } catch (error) {
    tarsplit.abort();
    await file?.abort();
    await writes.settle();
    await fsp.rm(dir, { recursive: true, force: true });
    throw error;
  }

  const diffID = diff.digest();
  const chunks = options.chunks?.(fileDigests);
  const record: LayerRecord = {
    schema: 1,
    diffID,
    provenance: options.provenance,
    tarSize: diff.bytes,
    entries,
    contentBytes,
    createdAt: new Date().toISOString(),
    ...(options.source ? { source: options.source } : {}),
    ...(chunks && chunks.length > 0 ? { chunks } : {}),
  };
  return { diffID, blobDigest: options.source?.blobDigest, dir, record, objects, tarSize: diff.bytes };
}

/**
 * Refuses entries that could write outside the root (SPEC §10): absolute names, `..`, and paths
 * through a symlink created earlier in the same layer. Hard-link targets obey the same rules.
 */
class PathGuard {
  private readonly symlinks = new Set<string>();

  admit(entry: TarEntry): StoredEntry {
    const path = normalizeEntryPath(entry.name);
    this.checkNotBeneathSymlink(path, entry.name);
    let link: string | undefined;
    if (entry.type === 'hardlink') {
      link = normalizeLinkTarget(entry.linkname, entry.name);
      this.checkNotBeneathSymlink(link, entry.name);
      if (link === path)
        throw new VerificationError(`hard link "${entry.name}" points at itself`, { path: entry.name });
    } else if (entry.type === 'symlink') {
      link = entry.linkname;
      this.symlinks.add(path);
    } else {
      this.symlinks.delete(path);
    }
    return toStoredEntry(entry, path, link);
  }

  private checkNotBeneathSymlink(path: string, name: string): void {
    if (this.symlinks.size === 0) return;
    for (const ancestor of ancestors(path)) {
      if (this.symlinks.has(ancestor)) {
        throw new VerificationError(
          `tar entry "${name}" is beneath the symlink "${ancestor}" of the same layer`,
          { path: name },
        );
      }
    }
  }
}

function toStoredEntry(entry: TarEntry, path: string, link: string | undefined): StoredEntry {
  const stored: StoredEntry = {
    path,
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.size,
    mtime: entry.mtime,
  };
  if (entry.uname) stored.uname = entry.uname;
  if (entry.gname) stored.gname = entry.gname;
  if (link !== undefined) stored.link = link;
  if (entry.type === 'char' || entry.type === 'block') {
    stored.devmajor = entry.devmajor;
    stored.devminor = entry.devminor;
  }
  const xattrNames = Object.keys(entry.xattrs);
  if (xattrNames.length > 0) {
    stored.xattrs = Object.fromEntries(
      xattrNames.sort().map((k) => [k, entry.xattrs[k]!.toString('base64')]),
    );
  }
  return stored;
}

/** Receives one file's content and turns it into an object (or recognises an existing one). */
class FileSink {
  private readonly hasher = new Hasher();
  private readonly small: Buffer[] = [];
  private temp: { path: string; handle: fsp.FileHandle } | undefined;
  private readonly hashOnly: boolean;

  constructor(
    private readonly session: StoreSession,
    readonly entry: StoredEntry,
    private readonly known: Digest | undefined,
    trustKnown: boolean,
  ) {
    // Content we already hold (a partial pull's reused files) is verified, not rewritten.
    this.hashOnly = known !== undefined && session.hasObject(known);
    this.trusted = this.hashOnly && trustKnown;
  }

  private readonly trusted: boolean;

  async write(bytes: Buffer): Promise<void> {
    if (this.trusted) return;
    this.hasher.update(bytes);
    if (this.hashOnly) return;
    if (this.entry.size <= SMALL_FILE) {
      this.small.push(Buffer.from(bytes));
      return;
    }
    if (!this.temp) {
      const tempPath = this.session.tempFile('object');
      this.temp = { path: tempPath, handle: await fsp.open(tempPath, 'wx', 0o444) };
    }
    await this.temp.handle.write(bytes);
  }

  async finish(writes: TaskWindow): Promise<Digest> {
    if (this.trusted) return this.known!;
    const digest = this.hasher.digest();
    if (this.known && this.known !== digest) {
      await this.abort();
      throw new VerificationError(
        `file "${this.entry.path}" content digest mismatch: expected ${this.known}, got ${digest}`,
        {
          path: this.entry.path,
        },
      );
    }
    if (this.hashOnly) return digest;
    const session = this.session;
    if (this.temp) {
      const { path: tempPath, handle } = this.temp;
      await handle.close();
      await session.stageObject(tempPath, digest);
      return digest;
    }
    if (!session.hasObject(digest)) {
      const content = this.small.length === 1 ? this.small[0]! : Buffer.concat(this.small);
      const tempPath = session.tempFile('object');
      await writes.add(async () => {
        await fsp.writeFile(tempPath, content, { mode: 0o444, flag: 'wx' });
        await session.stageObject(tempPath, digest);
      });
    }
    return digest;
  }

  async abort(): Promise<void> {
    if (!this.temp) return;
    await this.temp.handle.close().catch(() => undefined);
    await fsp.rm(this.temp.path, { force: true });
    this.temp = undefined;
  }
}
