/**
 * Resumable state of interrupted pulls (docs/resume.md): what a killed or failed pull had fetched,
 * kept so that the next pull of the same blob fetches only the rest. It lives outside tmp/ (which
 * a failed pull removes) and outside the committed store: nothing here is ever read as committed
 * content, and nothing here is used before it has been hashed again.
 *
 *   resume/sha256/<blob hex>/<owner>.<kind>.json   a record, rewritten atomically (temp + rename)
 *   resume/sha256/<blob hex>/<owner>-<r>.prefix     a full pull's compressed prefix, raw bytes
 *   resume/sha256/<blob hex>/<owner>-<r>.pieces     a partial pull's verified contents
 *
 * `owner` is the writing session's id (`<pid>-<random>`). A record whose process is dead is
 * claimed by renaming it to the claimer's name: of two pulls racing for it exactly one rename
 * succeeds, so a data file never has two writers. A live owner's state is left alone.
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type Digest, hexOf, isDigest, sha256 } from '../digest/index.js';
import { readdirOrEmpty, safeJson, writeFileAtomic } from '../util/files.js';
import type { StoreLayout } from './layout.js';
import { isRunning } from './lock.js';
import type { ObjectLocation } from './packs.js';

/** A prefix record is rewritten after every this many new bytes (a kill loses at most this much). */
const PREFIX_CHECKPOINT = 256 * 1024;
/** Verified pieces are appended in writes of about this size. */
const PIECES_FLUSH = 256 * 1024;
/** Each piece: "SKP1", u64 LE size, 32-byte sha256, then the content. */
const PIECE_MAGIC = 'SKP1';
const PIECE_HEADER = 44;
/** A piece larger than this is not one skiff wrote (chunks and small files are far smaller). */
const MAX_PIECE = 256 * 1024 * 1024;

/** Continuing a data file: positional writes (not O_APPEND, which ignores the position). */
const READ_WRITE_CREATE = fs.constants.O_RDWR | fs.constants.O_CREAT;

const DigestField = z.string().refine(isDigest) as unknown as z.ZodType<Digest>;
/** Data files are named by the record, and only ever inside the blob's directory. */
const DataName = z.string().regex(/^[A-Za-z0-9-]+\.(prefix|pieces)$/);
const PrefixRecordSchema = z.object({
  schema: z.literal(1),
  kind: z.literal('prefix'),
  blob: DigestField,
  data: DataName,
  size: z.number().int().nonnegative(),
  sha256: DigestField,
});
const PiecesRecordSchema = z.object({
  schema: z.literal(1),
  kind: z.literal('pieces'),
  blob: DigestField,
  data: DataName,
});
type PrefixRecord = z.infer<typeof PrefixRecordSchema>;
type Kind = 'prefix' | 'pieces';

export class ResumeArea {
  constructor(private readonly layout: StoreLayout) {}

  blobDir(blob: Digest): string {
    return this.layout.resumeBlobDir(blob);
  }

  /** The area as one session sees it: what it claims and writes is recorded under `owner`. */
  forSession(owner: string): ResumeSession {
    return new ResumeSession(this, owner);
  }

  /**
   * Removes state whose owner is dead and that was last written before `olderThan` (epoch ms;
   * Infinity: all of it). Returns the bytes freed.
   */
  async removeStale(olderThan: number): Promise<{ blobs: number; bytes: number }> {
    const base = this.layout.resumeDir;
    const removed = { blobs: 0, bytes: 0 };
    for (const hex of await readdirOrEmpty(base)) {
      const dir = path.join(base, hex);
      const files = await readdirOrEmpty(dir);
      const stats = await Promise.all(files.map((f) => fsp.lstat(path.join(dir, f)).catch(() => undefined)));
      const live = files.some((f) => f.endsWith('.json') && isRunning(ownerPid(f)));
      const newest = Math.max(0, ...stats.map((s) => s?.mtimeMs ?? 0));
      if (live || newest > olderThan) continue;
      removed.bytes += stats.reduce((sum, s) => sum + (s?.size ?? 0), 0);
      removed.blobs++;
      await fsp.rm(dir, { recursive: true, force: true });
    }
    return removed;
  }
}

/** One pull's view of the resume area. */
export class ResumeSession {
  constructor(
    readonly area: ResumeArea,
    readonly owner: string,
  ) {}

  /**
   * The prefix of `blob` a dead pull left, checked against its record's digest, ready to be
   * continued; a fresh empty prefix when there is none. `discarded` says why a prefix was dropped.
   */
  async openPrefix(blob: Digest): Promise<{ prefix: PrefixWriter; discarded?: string }> {
    const dir = this.area.blobDir(blob);
    const claimed = await this.claim(blob, 'prefix', (r) => PrefixRecordSchema.safeParse(r).data);
    if (claimed) {
      const record = claimed.record;
      const dataPath = path.join(dir, record.data);
      const hash = await hashPrefix(dataPath, record.size);
      if (hash && `sha256:${hash.copy().digest('hex')}` === record.sha256 && record.blob === blob) {
        const prefix = await PrefixWriter.continue(claimed.path, dataPath, record, hash);
        return { prefix };
      }
      await removeQuietly(claimed.path, dataPath);
      const prefix = await PrefixWriter.start(
        this.recordPath(blob, 'prefix'),
        this.dataPath(blob, 'prefix'),
        blob,
      );
      return {
        prefix,
        discarded: hash
          ? `the saved ${record.size}-byte prefix does not match its record's digest`
          : `the saved prefix is shorter than the ${record.size} bytes its record names`,
      };
    }
    return {
      prefix: await PrefixWriter.start(this.recordPath(blob, 'prefix'), this.dataPath(blob, 'prefix'), blob),
    };
  }

  /**
   * The verified pieces of `blob` a dead pull left (every piece hashed again here; the log stops
   * at the first that does not verify), and the log this pull appends to.
   */
  async openPieces(blob: Digest): Promise<{ pieces: PieceLog; discarded?: string }> {
    const claimed = await this.claim(blob, 'pieces', (r) => PiecesRecordSchema.safeParse(r).data);
    if (claimed && claimed.record.blob === blob) {
      const dataPath = path.join(this.area.blobDir(blob), claimed.record.data);
      const scanned = await scanPieces(dataPath);
      const pieces = new PieceLog(claimed.path, dataPath, blob, scanned.index, scanned.validBytes, true);
      const discarded =
        scanned.validBytes < scanned.fileBytes
          ? `${scanned.fileBytes - scanned.validBytes} bytes of saved pieces do not verify`
          : undefined;
      return discarded ? { pieces, discarded } : { pieces };
    }
    if (claimed) await removeQuietly(claimed.path);
    return {
      pieces: new PieceLog(
        this.recordPath(blob, 'pieces'),
        this.dataPath(blob, 'pieces'),
        blob,
        new Map(),
        0,
        false,
      ),
    };
  }

  /** Drops what this session holds for `blob`, and what dead pulls left for it (it is committed now). */
  async forget(blob: Digest): Promise<void> {
    const dir = this.area.blobDir(blob);
    const files = await readdirOrEmpty(dir);
    const records = files.filter((f) => f.endsWith('.json'));
    const others = records.filter((f) => !f.startsWith(`${this.owner}.`) && isRunning(ownerPid(f)));
    if (others.length > 0) {
      // Another live pull writes state for the same blob: leave it; drop only ours.
      for (const f of files.filter((f) => f.startsWith(`${this.owner}`)))
        await removeQuietly(path.join(dir, f));
      return;
    }
    await fsp.rm(dir, { recursive: true, force: true });
  }

  private recordPath(blob: Digest, kind: Kind): string {
    return path.join(this.area.blobDir(blob), `${this.owner}.${kind}.json`);
  }

  private dataPath(blob: Digest, kind: Kind): string {
    return path.join(this.area.blobDir(blob), `${this.owner}-${randomBytes(4).toString('hex')}.${kind}`);
  }

  /**
   * Takes over the best record of `kind` for `blob` whose writer is dead: renamed to this
   * session's name, so no other pull can take it too. Unparsable records are removed.
   */
  private async claim<T extends { data: string }>(
    blob: Digest,
    kind: Kind,
    parse: (value: unknown) => T | undefined,
  ): Promise<{ path: string; record: T } | undefined> {
    const dir = this.area.blobDir(blob);
    const suffix = `.${kind}.json`;
    const candidates: Array<{ file: string; record: T; size: number }> = [];
    for (const file of await readdirOrEmpty(dir)) {
      if (!file.endsWith(suffix) || isRunning(ownerPid(file))) continue;
      const text = await fsp.readFile(path.join(dir, file), 'utf8').catch(() => undefined);
      const record = text === undefined ? undefined : parse(safeJson(text));
      if (!record) {
        await removeQuietly(path.join(dir, file));
        continue;
      }
      const stat = await fsp.stat(path.join(dir, record.data)).catch(() => undefined);
      candidates.push({ file, record, size: stat?.size ?? 0 });
    }
    candidates.sort((a, b) => b.size - a.size);
    const mine = this.recordPath(blob, kind);
    for (const candidate of candidates) {
      try {
        await fsp.rename(path.join(dir, candidate.file), mine);
        return { path: mine, record: candidate.record };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    return undefined;
  }
}

/**
 * A full pull's compressed prefix as it arrives, and the running digest of it: the record names
 * only bytes already written, with their digest, so whatever a kill leaves is a valid record (or a
 * longer data file whose tail is ignored).
 */
export class PrefixWriter {
  private checkpointed: number;
  private failed = false;

  private constructor(
    private readonly recordPath: string,
    readonly dataPath: string,
    private readonly blob: Digest,
    private handle: fsp.FileHandle | undefined,
    private hash: Hash,
    /** Bytes of the blob held (verified against the record when continued). */
    public size: number,
  ) {
    this.checkpointed = size;
  }

  static async start(recordPath: string, dataPath: string, blob: Digest): Promise<PrefixWriter> {
    return new PrefixWriter(recordPath, dataPath, blob, undefined, createHash('sha256'), 0);
  }

  static async continue(recordPath: string, dataPath: string, record: PrefixRecord, hash: Hash) {
    const handle = await fsp.open(dataPath, READ_WRITE_CREATE);
    await handle.truncate(record.size);
    return new PrefixWriter(recordPath, dataPath, record.blob, handle, hash, record.size);
  }

  /** Starts again from byte 0 (the server ignored the Range asked for). */
  async restart(): Promise<void> {
    await this.handle?.truncate(0);
    this.hash = createHash('sha256');
    this.size = 0;
    this.checkpointed = -1;
  }

  /**
   * Appends bytes that follow the prefix. Best effort: a failed write (a full disk) stops the
   * recording, never the pull.
   */
  async append(bytes: Buffer): Promise<void> {
    if (this.failed) return;
    try {
      if (!this.handle) {
        await fsp.mkdir(path.dirname(this.dataPath), { recursive: true });
        this.handle = await fsp.open(this.dataPath, 'wx');
      }
      await this.handle.write(bytes, 0, bytes.length, this.size);
      this.hash.update(bytes);
      this.size += bytes.length;
      if (this.size - this.checkpointed >= PREFIX_CHECKPOINT) await this.checkpoint();
    } catch {
      this.failed = true;
    }
  }

  private async checkpoint(): Promise<void> {
    const record: PrefixRecord = {
      schema: 1,
      kind: 'prefix',
      blob: this.blob,
      data: path.basename(this.dataPath),
      size: this.size,
      sha256: `sha256:${this.hash.copy().digest('hex')}`,
    };
    await writeFileAtomic(this.recordPath, `${JSON.stringify(record)}\n`);
    this.checkpointed = this.size;
  }

  /** Records the exact length reached and closes the file (the state stays for a later pull). */
  async close(): Promise<void> {
    if (!this.failed && this.handle && this.size !== this.checkpointed)
      await this.checkpoint().catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  /** Drops the prefix: its bytes turned out not to be the blob. */
  async discard(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    this.failed = true;
    await removeQuietly(this.recordPath, this.dataPath);
  }
}

/**
 * A partial pull's verified contents (chunks, and single-chunk files, which are their chunk),
 * appended as self-checking pieces; read back as chunk locations by the next partial pull.
 */
export class PieceLog {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private handle: fsp.FileHandle | undefined;
  private failed = false;

  constructor(
    private readonly recordPath: string,
    readonly dataPath: string,
    private readonly blob: Digest,
    private readonly index: Map<Digest, { offset: number; size: number }>,
    private size: number,
    private readonly exists: boolean,
  ) {}

  /** Where the content `digest` of `size` bytes is held, as a location a reader verifies again. */
  find(digest: Digest, size: number): ObjectLocation | undefined {
    const at = this.index.get(digest);
    if (!at || at.size !== size) return undefined;
    return { path: this.dataPath, offset: at.offset, size: at.size, packed: true };
  }

  get held(): number {
    return this.index.size;
  }

  /**
   * Queues content already verified against `digest`; written in batches, best effort. The
   * promise settles once a full batch is written, so a caller that awaits it holds at most one
   * batch in memory however fast the network is.
   */
  async append(digest: Digest, content: Buffer): Promise<void> {
    if (this.failed || this.index.has(digest)) return;
    const header = Buffer.alloc(PIECE_HEADER);
    header.write(PIECE_MAGIC, 0, 'latin1');
    header.writeBigUInt64LE(BigInt(content.length), 4);
    header.write(hexOf(digest), 12, 'hex');
    this.index.set(digest, { offset: this.size + this.pendingBytes + PIECE_HEADER, size: content.length });
    this.pending.push(header, content);
    this.pendingBytes += PIECE_HEADER + content.length;
    if (this.pendingBytes >= PIECES_FLUSH) await this.flush();
  }

  private flush(): Promise<void> {
    const batch = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return this.writing;
    const at = this.size;
    this.size += bytes;
    this.writing = this.writing.then(async () => {
      if (this.failed) return;
      try {
        if (!this.handle) this.handle = await this.openData();
        await this.handle.writev(batch, at);
      } catch {
        this.failed = true;
      }
    });
    return this.writing;
  }

  private async openData(): Promise<fsp.FileHandle> {
    if (this.exists) {
      const handle = await fsp.open(this.dataPath, READ_WRITE_CREATE);
      // Anything past the last verified piece is a torn write or damage: appends go after the good part.
      await handle.truncate(this.size);
      return handle;
    }
    await fsp.mkdir(path.dirname(this.dataPath), { recursive: true });
    const handle = await fsp.open(this.dataPath, 'wx');
    const record = { schema: 1, kind: 'pieces', blob: this.blob, data: path.basename(this.dataPath) };
    await writeFileAtomic(this.recordPath, `${JSON.stringify(record)}\n`);
    return handle;
  }

  /** Writes what is queued and closes the file (the state stays for a later pull). */
  async close(): Promise<void> {
    await this.flush();
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}

/** The digest state of a prefix file's first `size` bytes; undefined if the file is shorter. */
async function hashPrefix(file: string, size: number): Promise<Hash | undefined> {
  const hash = createHash('sha256');
  if (size === 0) return hash;
  let read = 0;
  try {
    for await (const piece of fs.createReadStream(file, {
      start: 0,
      end: size - 1,
      highWaterMark: 1 << 20,
    })) {
      hash.update(piece as Buffer);
      read += (piece as Buffer).length;
    }
  } catch {
    return undefined;
  }
  return read === size ? hash : undefined;
}

/** Reads a pieces file, hashing every piece; stops at the first one that is torn or does not verify. */
async function scanPieces(file: string) {
  const index = new Map<Digest, { offset: number; size: number }>();
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch {
    return { index, validBytes: 0, fileBytes: 0 };
  }
  try {
    const fileBytes = (await handle.stat()).size;
    let at = 0;
    const header = Buffer.alloc(PIECE_HEADER);
    while (at + PIECE_HEADER <= fileBytes) {
      await handle.read(header, 0, PIECE_HEADER, at);
      if (header.toString('latin1', 0, 4) !== PIECE_MAGIC) break;
      const size = Number(header.readBigUInt64LE(4));
      if (size > MAX_PIECE || at + PIECE_HEADER + size > fileBytes) break;
      const content = Buffer.allocUnsafe(size);
      const { bytesRead } = await handle.read(content, 0, size, at + PIECE_HEADER);
      const digest = `sha256:${header.toString('hex', 12, 44)}` as Digest;
      if (bytesRead !== size || sha256(content) !== digest) break;
      index.set(digest, { offset: at + PIECE_HEADER, size });
      at += PIECE_HEADER + size;
    }
    return { index, validBytes: at, fileBytes };
  } finally {
    await handle.close();
  }
}

/** Removes files, and their blob directory once it is empty. */
async function removeQuietly(...files: string[]): Promise<void> {
  for (const file of files) await fsp.rm(file, { force: true }).catch(() => undefined);
  if (files.length > 0) await fsp.rmdir(path.dirname(files[0]!)).catch(() => undefined);
}

function ownerPid(file: string): number {
  return Number(file.split('-')[0]);
}
