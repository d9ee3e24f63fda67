/**
 * A writer's session with the store (a pull, or any copy into it): what it stages is its own until
 * committed, and gc leaves the store alone while it runs (Store.beginSession registers it).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { type ObjectLocation, PACK_THRESHOLD, PackWriter } from './packs.js';
import type { ChunkRef, LayerRecord } from './records.js';
import type { Store } from './store.js';

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
    this.tmpDir = store.layout.stagingDir(id);
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
      await fsp.rename(finished.pack, this.store.layout.packFile(name));
      await fsp.rename(finished.index, this.store.layout.packIndexFile(name));
      this.store.packs.add(name);
      this.pack = undefined;
    }
    for (const [digest, temp] of this.loose) {
      // If another pull placed it meanwhile, the content is identical by construction.
      await fsp.rename(temp, this.store.layout.looseObject(digest));
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

  /**
   * Ends the session: whatever was staged and not committed goes, and so does the registration.
   * Each step runs even if one before it failed (a full disk); the first failure wins.
   */
  async end(): Promise<void> {
    const steps = [
      () => this.pack?.abort(),
      () => fsp.rm(this.tmpDir, { recursive: true, force: true }),
      () => fsp.rm(this.store.layout.sessionFile(this.id), { force: true }),
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
