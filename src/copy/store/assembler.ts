/**
 * Assembling a partial pull's missing files from verified chunks (fetched, zeros, or read from
 * stored objects), and staging each one as an object once its whole-file digest checks out.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { type Digest, Hasher, sha256 } from '../../digest/index.js';
import { VerificationError } from '../../errors/index.js';
import {
  type ObjectLocation,
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

/**
 * Assembles missing files from verified chunks: small ones in memory, large ones in temp files;
 * each is staged as an object once complete and its whole-file digest checks out. Memory is taken
 * per file when its first chunk arrives and given back when it is staged, so what is held at once
 * is the files in flight, not every missing file of the layer.
 */
export class FileAssembler {
  private readonly open = new Map<PlannedFile, Assembly>();

  constructor(
    private readonly session: StoreSession,
    files: readonly PlannedFile[],
  ) {
    for (const file of files) {
      this.open.set(
        file,
        file.size <= PACK_THRESHOLD
          ? { kind: 'memory', remaining: file.chunks.length }
          : { kind: 'file', path: session.tempFile('assemble'), remaining: file.chunks.length },
      );
    }
  }

  /** Chunks that need no fetch: zeros, and chunks held by stored objects. */
  async fillLocal(locations: ReadonlyMap<Digest, LocalChunk>): Promise<void> {
    for (const file of this.open.keys()) {
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
    } else {
      state.handle ??= await fsp.open(state.path, 'wx', 0o444);
      await state.handle.write(data, 0, data.length, chunk.chunkOffset);
    }
    if (--state.remaining === 0) await this.finish(file, state);
  }

  private async finish(file: PlannedFile, state: Assembly): Promise<void> {
    this.open.delete(file);
    if (state.kind === 'memory') {
      const content = state.buffer ?? Buffer.alloc(0);
      // A single-chunk file was verified by its chunk digest, which is its file digest.
      if (file.chunks.length > 1) this.checkWhole(file, sha256(content), content.length);
      await this.session.stageSmall(file.digest, content);
      return;
    }
    await state.handle?.close();
    const hasher = new Hasher();
    for await (const piece of fs.createReadStream(state.path, { highWaterMark: 1 << 20 }))
      hasher.update(piece as Buffer);
    try {
      this.checkWhole(file, hasher.digest(), hasher.bytes);
    } catch (error) {
      await fsp.rm(state.path, { force: true });
      throw error;
    }
    await this.session.stageLoose(state.path, file.digest, file.size);
  }

  /** Chunks verified one by one can still assemble into a file the TOC did not describe. */
  private checkWhole(file: PlannedFile, actual: Digest, size: number): void {
    if (actual !== file.digest || size !== file.size) {
      throw new VerificationError(
        `file "${file.path}" assembled from verified chunks does not match its digest ${file.digest}`,
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
      await state.handle?.close().catch(() => undefined);
      await fsp.rm(state.path, { force: true });
    }
    this.open.clear();
  }
}

type Assembly =
  | { kind: 'memory'; buffer?: Buffer; remaining: number }
  | { kind: 'file'; path: string; handle?: fsp.FileHandle; remaining: number };
