/**
 * Turns a layer's tar stream into a staged layer: every regular file's content becomes (or is
 * found as) an object, the rest of the tar goes into the tar-split, and the whole stream is hashed
 * into the DiffID the caller will commit under. One pass, bounded memory: file contents are
 * staged through a bounded window of writes while the parser keeps going.
 */
import fsp from 'node:fs/promises';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { ancestors, normalizeEntryPath, normalizeLinkTarget } from '../formats/paths.js';
import { type TarEntry, type TarToken, TarTokenizer } from '../formats/tar.js';
import { LayerHasher } from '../util/hashing.js';
import { asBuffer } from '../util/streams.js';
import { TaskWindow } from '../util/window.js';
import { StoreLayout } from './layout.js';
import { PACK_THRESHOLD } from './packs.js';
import type { RebuiltDigest } from './rebuild-hasher.js';
import type { ChunkRef, LayerRecord, StoredEntry } from './records.js';
import type { StagedLayerFiles, StoreSession } from './session.js';
import { TarSplitWriter } from './tarsplit.js';

/** Files being staged at once (each holds at most one small file in memory). */
const WRITE_WINDOW = 16;

export interface IngestOptions {
  session: StoreSession;
  /** How the layer was obtained, for the record and for error messages. */
  source?: { blobDigest: Digest; mediaType: string; format: string; method: string };
  provenance: 'publisher' | 'computed';
  /**
   * Content digests the caller already knows (a TOC, or objects a partial pull assembled), by
   * entry path. A file whose object already exists is then only hashed, never rewritten; a known
   * digest that the content does not match fails the layer.
   */
  knownDigest?: (path: string) => Digest | undefined;
  /**
   * Content named by knownDigest and already held is neither hashed nor rewritten: the caller
   * vouches for it with a check that covers every byte (a partial pull's DiffID check).
   */
  trustKnownObjects?: boolean;
  /** Chunks of this layer's files (from a chunked layer's TOC), recorded for later partial pulls. */
  chunks?: () => ChunkRef[];
  /**
   * The stream's DiffID and size as its source hashed them (a rebuild that hashes headers and held
   * contents on another thread): the ingest then hashes only the file data it is given.
   */
  digestedBySource?: () => Promise<RebuiltDigest>;
  /**
   * Called with each chunk of an async source once the ingest holds no view of its bytes any more
   * (its pieces hashed, written, or copied into the pack): a source may then reuse the chunk's
   * buffer (decode-worker.ts). Chunks are named by their `ArrayBuffer`; a source whose chunks share
   * one must not ask for this.
   */
  release?: (chunk: Buffer) => void;
}

/** A file's whole content that a rebuild holds as a stored object and hashes itself. */
export interface HeldContent {
  held: number;
  digest: Digest;
}

/**
 * What a rebuild from stored objects yields: bytes, held contents (only with digestedBySource and
 * trustKnownObjects), or a promise that asks the ingest to wait (the source's backpressure).
 */
export type RebuildPiece = Buffer | HeldContent | Promise<void>;

export interface StagedLayer extends StagedLayerFiles {
  tarSize: number;
}

/**
 * Ingests a tar stream into the session's staging area; commit it with StoreSession.commitLayer.
 * A synchronous iterable (a rebuild reading objects it already holds) is consumed without a
 * promise per chunk or token; the loop awaits only when a write has to wait.
 */
export async function ingestLayer(
  tar: AsyncIterable<Buffer | Uint8Array> | Iterable<RebuildPiece>,
  options: IngestOptions,
): Promise<StagedLayer> {
  const dir = await options.session.stagingDir('layer');
  const sink = new LayerSink(dir, options);
  const tokenizer = new TarTokenizer();
  try {
    if (Symbol.asyncIterator in tar) {
      // Iterated by hand, not with for-await: on a failure here the source must not be destroyed
      // first, or a stream pipeline reports the abort instead of the reason (a hostile path).
      const chunks = tar[Symbol.asyncIterator]();
      const lent = options.release ? new LentChunks(options.release) : undefined;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        const chunk = asBuffer(next.value);
        lent?.received(chunk);
        await sink.acceptAll(tokenizer.push(chunk));
        lent?.releaseUnheld(tokenizer.retains(), sink.retains());
      }
    } else {
      for (const piece of tar) {
        if (piece instanceof Promise) {
          await piece;
          continue;
        }
        const tokens = Buffer.isBuffer(piece)
          ? tokenizer.push(piece)
          : tokenizer.held(piece.held, piece.digest);
        const wait = sink.acceptAll(tokens);
        if (wait) await wait;
      }
    }
    await sink.acceptAll(tokenizer.end());
    return await sink.finish();
  } catch (error) {
    await sink.abort();
    throw error;
  }
}

/** What a layer's tokens turn into: staged objects, the tar-split, the DiffID and the record. */
class LayerSink {
  private readonly tarsplit: TarSplitWriter;
  private readonly hasher: LayerHasher;
  private readonly writes = new TaskWindow(WRITE_WINDOW);
  private readonly guard = new PathGuard();
  private readonly objects = new Set<Digest>();
  private entries = 0;
  private contentBytes = 0;
  /** Every byte of the stream, given or held: checked against the source's count. */
  private streamBytes = 0;
  private file: FileSink | undefined;
  /** The first piece's buffer of each small file handed to the pack and not yet copied there. */
  private readonly staging = new Map<FileSink, ArrayBufferLike>();

  constructor(
    private readonly dir: string,
    private readonly options: IngestOptions,
  ) {
    this.tarsplit = new TarSplitWriter(StoreLayout.layerFiles(dir).tarSplit);
    // A source that hashes the stream itself leaves only file content to hash here.
    this.hasher = new LayerHasher(!options.digestedBySource);
  }

  /**
   * The buffers of the input this sink still holds views of: the open file's small pieces and
   * those of files waiting for the pack's copy (pieces of one file are views of input in order,
   * so its first piece's buffer is its oldest).
   */
  retains(): ArrayBufferLike[] {
    const held = [...this.staging.values()];
    const open = this.file?.oldestPiece();
    if (open) held.push(open);
    return held;
  }

  /** Takes tokens in order; returns a promise only when one of them had to wait for a write. */
  acceptAll(tokens: readonly TarToken[], from = 0): Promise<void> | undefined {
    for (let i = from; i < tokens.length; i++) {
      const wait = this.accept(tokens[i]!);
      if (wait) return wait.then(() => this.acceptAll(tokens, i + 1));
    }
    return undefined;
  }

  private accept(token: TarToken): Promise<void> | undefined {
    switch (token.kind) {
      case 'raw':
        this.tarsplit.raw(token.bytes);
        this.streamBytes += token.bytes.length;
        if (!this.options.digestedBySource) this.hasher.raw(token.bytes);
        return undefined;
      case 'entry': {
        const stored = this.guard.admit(token.entry);
        this.entries++;
        if (stored.type !== 'file' || stored.size === 0) return this.tarsplit.entry(stored);
        this.file = new FileSink(this.options, stored, this.hasher);
        this.contentBytes += stored.size;
        return undefined;
      }
      case 'data':
        this.streamBytes += token.bytes.length;
        return this.file?.write(token.bytes);
      case 'held':
        // Content this thread never sees can only count if the source hashes it.
        if (!this.options.digestedBySource) throw new Error('held content needs digestedBySource');
        this.streamBytes += token.size;
        this.file?.heldByStore(token.id);
        return undefined;
      case 'end-entry':
        return this.file ? this.endFile(this.file) : undefined;
    }
  }

  private endFile(done: FileSink): Promise<void> | undefined {
    this.file = undefined;
    const digest = done.digest();
    done.check(digest);
    done.entry.digest = digest;
    this.objects.add(digest);
    const stage = () => {
      if (done.held) return undefined;
      const oldest = done.oldestPiece();
      if (oldest) this.staging.set(done, oldest);
      return this.writes.add(() => done.stage(digest).finally(() => this.staging.delete(done)));
    };
    const flushed = this.tarsplit.entry(done.entry);
    return flushed ? flushed.then(stage) : stage();
  }

  async finish(): Promise<StagedLayer> {
    const { diffID, bytes } = await this.streamDigest();
    await this.writes.drain();
    await this.tarsplit.finish();
    const chunks = this.options.chunks?.();
    const record: LayerRecord = {
      schema: 1,
      diffID,
      provenance: this.options.provenance,
      tarSize: bytes,
      entries: this.entries,
      contentBytes: this.contentBytes,
      createdAt: new Date().toISOString(),
      ...(this.options.source ? { source: this.options.source } : {}),
      ...(chunks && chunks.length > 0 ? { chunkCount: chunks.length } : {}),
    };
    const blobDigest = this.options.source?.blobDigest;
    return { diffID, blobDigest, dir: this.dir, record, objects: this.objects, chunks, tarSize: bytes };
  }

  private async streamDigest(): Promise<RebuiltDigest> {
    if (!this.options.digestedBySource) return this.hasher.finish();
    const digest = await this.options.digestedBySource();
    if (digest.bytes !== this.streamBytes) {
      throw new VerificationError(
        `layer rebuild hashed ${digest.bytes} bytes but its tar has ${this.streamBytes}`,
      );
    }
    return digest;
  }

  async abort(): Promise<void> {
    this.tarsplit.abort();
    await this.file?.abort();
    await this.writes.settle();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Refuses entries that could write outside the root (docs/design.md §10): absolute names, `..`, and paths
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

/**
 * Receives one file's content. Small content is kept in memory and packed; large content streams
 * to a temp file. Content the store already holds under a known digest is only hashed (or, when
 * the caller vouches for it, not even that).
 */
class FileSink {
  private readonly small: Buffer[] = [];
  private temp: { path: string; handle: fsp.FileHandle } | undefined;
  private readonly known: Digest | undefined;
  /** Already held: nothing to write. Known once the content starts (bytes, or held by the source). */
  held = false;
  /** Already held and vouched for: nothing to hash per file either. */
  private trusted = false;
  private hashId = -1;
  private started = false;

  constructor(
    private readonly options: IngestOptions,
    readonly entry: StoredEntry,
    private readonly hasher: LayerHasher,
  ) {
    this.known = options.knownDigest?.(entry.path);
  }

  /**
   * Content given as bytes: whether the store holds it already is asked here, not for content the
   * source holds itself (heldByStore), which it has located already.
   */
  private start(): void {
    this.started = true;
    this.held = this.known !== undefined && this.options.session.hasObject(this.known, this.entry.size);
    this.trusted = this.held && (this.options.trustKnownObjects ?? false);
    if (!this.trusted) this.hashId = this.hasher.begin();
  }

  /** The buffer behind this file's first small piece, while it holds pieces (views of input). */
  oldestPiece(): ArrayBufferLike | undefined {
    return this.small[0]?.buffer;
  }

  /** Returns a promise only for large content, which goes to a temp file. */
  write(bytes: Buffer): Promise<void> | undefined {
    if (!this.started) this.start();
    if (this.trusted) this.hasher.raw(bytes);
    else this.hasher.data(this.hashId, bytes);
    if (this.held) return undefined;
    if (this.entry.size <= PACK_THRESHOLD) {
      // A view, not a copy: decoders hand out fresh buffers, and the pack copies it into its batch.
      this.small.push(bytes);
      return undefined;
    }
    return this.writeTemp(bytes);
  }

  /**
   * The whole content, held by the rebuild's source as the object `digest`: it must be the object
   * the caller vouches for at this path, or the record would name other content than the stream.
   */
  heldByStore(digest: string): void {
    if (this.started || !this.options.trustKnownObjects || digest !== this.known) {
      throw new VerificationError(
        `file "${this.entry.path}": the rebuild puts object ${digest} where ${this.known ?? 'no known object'} belongs`,
        { path: this.entry.path },
      );
    }
    this.started = true;
    this.held = true;
    this.trusted = true;
  }

  private async writeTemp(bytes: Buffer): Promise<void> {
    if (!this.temp) {
      const tempPath = this.options.session.tempFile('object');
      this.temp = { path: tempPath, handle: await fsp.open(tempPath, 'wx', 0o444) };
    }
    await this.temp.handle.write(bytes);
  }

  digest(): Digest {
    if (!this.started) this.start();
    return this.trusted ? this.known! : this.hasher.end(this.hashId);
  }

  /** A known digest the content does not match fails the layer. */
  check(digest: Digest): void {
    if (this.known && this.known !== digest) {
      throw new VerificationError(
        `file "${this.entry.path}" content digest mismatch: expected ${this.known}, got ${digest}`,
        {
          path: this.entry.path,
        },
      );
    }
  }

  /** Stages the content if it is new. */
  async stage(digest: Digest): Promise<void> {
    if (this.held) return;
    const session = this.options.session;
    if (this.temp) {
      await this.temp.handle.close();
      await session.stageLoose(this.temp.path, digest, this.entry.size);
      this.temp = undefined;
      return;
    }
    await session.stageSmall(digest, this.small);
  }

  async abort(): Promise<void> {
    if (!this.temp) return;
    await this.temp.handle.close().catch(() => undefined);
    await fsp.rm(this.temp.path, { force: true });
    this.temp = undefined;
  }
}

/**
 * The async source's chunks the ingest has received and not yet handed back (`release`), in the
 * order received. A chunk goes back once nothing older than what is still held remains: the
 * tokenizer's queue and the files' pieces are views of input in order, so every chunk received
 * before the oldest one still viewed is unread.
 */
class LentChunks {
  private readonly order = new Map<ArrayBufferLike, { chunk: Buffer; seq: number }>();
  private seq = 0;

  constructor(private readonly release: (chunk: Buffer) => void) {}

  received(chunk: Buffer): void {
    this.order.set(chunk.buffer, { chunk, seq: this.seq++ });
  }

  /** Hands back every chunk older than the oldest the tokenizer or the sink still holds a view of. */
  releaseUnheld(tokenizer: ArrayBufferLike | 'all' | undefined, sink: readonly ArrayBufferLike[]): void {
    if (tokenizer === 'all') return;
    let oldest = this.seq;
    for (const buffer of tokenizer ? [tokenizer, ...sink] : sink) {
      const seq = this.order.get(buffer)?.seq;
      // A view of a buffer not received here (a copy made downstream) holds no chunk.
      if (seq !== undefined && seq < oldest) oldest = seq;
    }
    // The Map iterates in insertion order: received order, a reused buffer re-inserted last.
    for (const [buffer, { chunk, seq }] of this.order) {
      if (seq >= oldest) break;
      this.order.delete(buffer);
      this.release(chunk);
    }
  }
}
