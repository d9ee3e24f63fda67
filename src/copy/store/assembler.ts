/**
 * Assembling a partial pull's missing files from verified chunks (fetched, zeros, or read from
 * stored objects), and staging each one as an object once its whole-file digest checks out.
 */
import fsp from 'node:fs/promises';
import { type Digest, Hasher, sha256 } from '../../digest/index.js';
import { VerificationError } from '../../errors/index.js';
import {
  type ObjectLocation,
  ObjectRangeReader,
  PACK_THRESHOLD,
  readStoredRange,
  type StoreSession,
} from '../../store/index.js';
import type { PlannedChunk, PlannedFile } from '../../strategy/fetch-set.js';

/** A chunk the store already holds: `size` bytes at `offset` within a stored object. */
export interface LocalChunk {
  location: ObjectLocation;
  offset: number;
  size: number;
}

/** Large files are read back and hashed in pieces of at most this many bytes. */
const PIECE_BYTES = 1024 * 1024;

/**
 * Assembles missing files from verified chunks: small ones in memory, large ones in temp files;
 * each is staged as an object once complete and its whole-file digest checks out. Memory is taken
 * per file when its first chunk arrives and given back when it is staged, so what is held at once
 * is the files in flight, not every missing file of the layer.
 *
 * A large file (a 200 MB file of which a partial pull fetches a few chunks) gets only its fetched
 * chunks as they arrive. Once the last has, its bytes are taken in file order, each once: runs of
 * chunks held by one stored object are read in a few large reads (not a read per chunk) and
 * written, zeros are left as holes, fetched chunks are read back; one hash over all of it proves
 * the whole file, so the held chunks are not hashed one by one as well (a held chunk that differs
 * from its digest fails that check).
 */
export class FileAssembler {
  private readonly open = new Map<PlannedFile, Assembly>();
  private locations: ReadonlyMap<Digest, LocalChunk> = new Map();

  constructor(
    private readonly session: StoreSession,
    files: readonly PlannedFile[],
  ) {
    for (const file of files) {
      this.open.set(
        file,
        file.size <= PACK_THRESHOLD
          ? { kind: 'memory', remaining: file.chunks.length }
          : {
              kind: 'file',
              path: session.tempFile('assemble'),
              remaining: file.chunks.filter((c) => c.source === 'fetch').length,
            },
      );
    }
  }

  /**
   * Chunks that need no fetch: zeros, and chunks held by stored objects. Large files that need
   * no fetch at all are assembled now; the others once their fetched chunks are in.
   */
  async fillLocal(locations: ReadonlyMap<Digest, LocalChunk>): Promise<void> {
    this.locations = locations;
    for (const [file, state] of [...this.open]) {
      if (state.kind === 'file') {
        if (state.remaining === 0) await this.finishLarge(file, state);
        continue;
      }
      for (const chunk of file.chunks) {
        if (chunk.source === 'zeros') await this.put(file, chunk, Buffer.alloc(chunk.size));
        else if (chunk.source === 'local') {
          const at = locations.get(chunk.digest)!;
          await this.put(file, chunk, await readStoredRange(at.location, at.offset, at.size));
        }
      }
    }
  }

  async put(file: PlannedFile, chunk: PlannedChunk, data: Buffer): Promise<void> {
    const actual = sha256(data);
    if (actual !== chunk.digest) {
      throw new VerificationError(
        `chunk of "${file.path}" at ${chunk.chunkOffset} does not match its digest ${chunk.digest} (got ${actual})`,
        {
          path: file.path,
        },
      );
    }
    const state = this.open.get(file);
    if (!state) throw new Error(`chunk for an unplanned file ${file.path}`);
    if (state.kind === 'memory') {
      // A single-chunk file is its chunk: no copy. Chunks cover a file exactly (the TOC checks
      // say so, the whole-file digest proves it), so the buffer needs no zeroing.
      if (file.chunks.length === 1) state.buffer = data;
      else {
        state.buffer ??= Buffer.allocUnsafe(file.size);
        state.buffer.set(data, chunk.chunkOffset);
      }
      if (--state.remaining === 0) await this.finishSmall(file, state);
    } else {
      if (chunk.source !== 'fetch') throw new Error(`put: a held chunk of the large file ${file.path}`);
      await writeAll(await openTemp(state), data, chunk.chunkOffset);
      if (--state.remaining === 0) await this.finishLarge(file, state);
    }
  }

  private async finishSmall(file: PlannedFile, state: MemoryAssembly): Promise<void> {
    this.open.delete(file);
    const content = state.buffer ?? Buffer.alloc(0);
    // A single-chunk file was verified by its chunk digest, which is its file digest.
    if (file.chunks.length > 1) this.checkWhole(file, sha256(content), content.length);
    await this.session.stageSmall(file.digest, content);
  }

  private async finishLarge(file: PlannedFile, state: FileAssembly): Promise<void> {
    this.open.delete(file);
    try {
      const handle = await openTemp(state);
      // Zero chunks stay holes: the file has its whole size before any run is written.
      await handle.truncate(file.size);
      const hasher = new Hasher();
      // One buffer for every piece: each is hashed and written before the next is read.
      const piece = Buffer.allocUnsafe(PIECE_BYTES);
      for (const run of chunkRuns(file.chunks, this.locations)) {
        const stored = run.kind === 'local' ? await ObjectRangeReader.open(run.location) : undefined;
        try {
          for (let done = 0; done < run.size; ) {
            const length = Math.min(PIECE_BYTES, run.size - done);
            const at = run.fileOffset + done;
            const bytes =
              run.kind === 'local'
                ? await stored!.read(run.objectOffset + done, piece, length)
                : run.kind === 'zeros'
                  ? zeros(length)
                  : await readBack(handle, piece, length, at);
            if (bytes.length !== length)
              throw new VerificationError(
                `file "${file.path}": ${bytes.length} of ${length} bytes read at ${at}`,
              );
            hasher.update(bytes);
            if (run.kind === 'local') await writeAll(handle, bytes, at);
            done += length;
          }
        } finally {
          await stored?.close();
        }
      }
      await handle.close();
      this.checkWhole(file, hasher.digest(), hasher.bytes);
    } catch (error) {
      await closeTemp(state);
      await fsp.rm(state.path, { force: true });
      throw error;
    }
    await this.session.stageLoose(state.path, file.digest, file.size);
  }

  /** Chunks verified one by one can still assemble into a file the TOC did not describe. */
  private checkWhole(file: PlannedFile, actual: Digest, size: number): void {
    if (actual !== file.digest || size !== file.size) {
      throw new VerificationError(
        `file "${file.path}" assembled from its chunks does not match its digest ${file.digest}`,
        {
          path: file.path,
        },
      );
    }
  }

  assertComplete(): void {
    const missing = [...this.open.keys()];
    if (missing.length > 0)
      throw new VerificationError(
        `partial pull left ${missing.length} file(s) incomplete, e.g. "${missing[0]!.path}"`,
      );
  }

  async abort(): Promise<void> {
    for (const state of this.open.values()) {
      if (state.kind !== 'file') continue;
      await closeTemp(state);
      await fsp.rm(state.path, { force: true });
    }
    this.open.clear();
  }
}

type MemoryAssembly = { kind: 'memory'; buffer?: Buffer; remaining: number };
/** `remaining` counts the fetched chunks still to come: the others are taken when it is done. */
type FileAssembly = { kind: 'file'; path: string; handle?: Promise<fsp.FileHandle>; remaining: number };

/**
 * Opened once, by whichever chunk comes first (chunks of one file arrive on several requests at
 * once), for writing and for reading the fetched chunks back.
 */
function openTemp(state: FileAssembly): Promise<fsp.FileHandle> {
  state.handle ??= fsp.open(state.path, 'wx+', 0o444);
  return state.handle;
}

async function closeTemp(state: FileAssembly): Promise<void> {
  const handle = await state.handle?.catch(() => undefined);
  await handle?.close().catch(() => undefined);
}
type Assembly = MemoryAssembly | FileAssembly;

/** Consecutive chunks of a file that are read the same way: from one stored object, zeros, or fetched. */
type ChunkRun = { fileOffset: number; size: number } & (
  | { kind: 'local'; location: ObjectLocation; objectOffset: number }
  | { kind: 'zeros' }
  | { kind: 'fetched' }
);

/**
 * A file's chunks as runs: neighbours held at consecutive offsets of one stored object (a file
 * whose v2 changed a few chunks is mostly its v1 object, in order) become one run.
 */
export function chunkRuns(
  chunks: readonly PlannedChunk[],
  locations: ReadonlyMap<Digest, LocalChunk>,
): ChunkRun[] {
  const runs: ChunkRun[] = [];
  for (const chunk of chunks) {
    const last = runs.at(-1);
    const contiguous = last !== undefined && last.fileOffset + last.size === chunk.chunkOffset;
    if (chunk.source === 'local') {
      const at = locations.get(chunk.digest);
      if (!at) throw new Error(`no location for the held chunk ${chunk.digest}`);
      if (
        contiguous &&
        last.kind === 'local' &&
        last.location === at.location &&
        last.objectOffset + last.size === at.offset
      ) {
        last.size += chunk.size;
        continue;
      }
      runs.push({
        kind: 'local',
        fileOffset: chunk.chunkOffset,
        size: chunk.size,
        location: at.location,
        objectOffset: at.offset,
      });
      continue;
    }
    const kind = chunk.source === 'zeros' ? 'zeros' : 'fetched';
    if (contiguous && last.kind === kind) last.size += chunk.size;
    else runs.push({ kind, fileOffset: chunk.chunkOffset, size: chunk.size });
  }
  return runs;
}

let zeroPiece: Buffer | undefined;
function zeros(length: number): Buffer {
  zeroPiece ??= Buffer.alloc(PIECE_BYTES);
  return zeroPiece.subarray(0, length);
}

/** A fetched piece of the file, read back from where it was written. */
async function readBack(handle: fsp.FileHandle, into: Buffer, length: number, at: number): Promise<Buffer> {
  const { bytesRead } = await handle.read(into, 0, length, at);
  return into.subarray(0, bytesRead);
}

async function writeAll(handle: fsp.FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}
