/**
 * Reading stored content: the store's read API for everything outside it. Callers name content by
 * digest (a layer's entries do) or hold an ObjectLocation the store handed out (Store.locate,
 * Store.findChunk, a resume area's PieceLog.find), and never open packs or loose object files
 * themselves: how content is kept (packs, loose files, their windows and descriptors) stays here.
 */
import fs from 'node:fs';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import {
  type ObjectLocation,
  ObjectRangeReader,
  ObjectReader,
  PACK_THRESHOLD,
  readObjectRange,
} from './packs.js';

export type { ObjectLocation };
export { ObjectRangeReader };

/** Content a layer's entry names: its digest and size; its path for messages. */
export interface ContentRef {
  digest: Digest;
  size: number;
  path: string;
}

/** Whatever can say where content is: the store, or a session that also sees what it staged. */
export interface ObjectLocator {
  locate(digest: Digest, size?: number): ObjectLocation | undefined;
}

/** `length` bytes from `start` within stored content (a chunk of a stored file, say). */
export function readStoredRange(location: ObjectLocation, start: number, length: number): Promise<Buffer> {
  return readObjectRange(location, start, length);
}

/**
 * Reads many objects in the order a layer names them (rebuilds, unpack, fsck): pack files stay
 * open and are read through a window until close(), so one read serves many small files.
 * Reads are synchronous (see ObjectReader): the content is in the page cache or just written.
 */
export class ContentReader {
  private readonly reader: ObjectReader;

  /**
   * `transient`: what read() returns is used before the next read (see ObjectReader), so one
   * buffer serves them all.
   */
  constructor(
    private readonly objects: ObjectLocator,
    options: { transient?: boolean } = {},
  ) {
    this.reader = new ObjectReader(options);
  }

  /** Where `ref`'s content is; a missing object is a damaged store (exit 4). */
  locate(ref: ContentRef): ObjectLocation {
    const location = this.objects.locate(ref.digest, ref.size);
    if (!location)
      throw new VerificationError(`object ${ref.digest} of "${ref.path}" is missing from the store`, {
        path: ref.path,
      });
    return location;
  }

  /** Content up to the pack threshold, whole (a view of the window: copy it to keep it; a transient reader's until the next read). */
  read(ref: ContentRef): Buffer {
    if (ref.size > PACK_THRESHOLD) throw new Error(`read: ${ref.size} bytes is over the pack threshold`);
    return this.reader.read(this.locate(ref));
  }

  /** Content of any size, in pieces of at most 1 MiB: memory stays bounded. */
  pieces(ref: ContentRef): Iterable<Buffer> {
    const location = this.locate(ref);
    return location.size <= PACK_THRESHOLD ? [this.reader.read(location)] : this.reader.pieces(location);
  }

  /**
   * Writes `ref`'s content as the new file `dest` (never through an existing one): a loose object
   * is copied, so the kernel may share its extents; packed content is written from the window.
   * Synchronous, like the reads: a trip through the thread pool per small file would cost an
   * unpack more than the write itself.
   */
  copyTo(ref: ContentRef, dest: string): void {
    const location = this.locate(ref);
    if (location.packed) fs.writeFileSync(dest, this.reader.read(location), { flag: 'wx' });
    else fs.copyFileSync(location.path, dest, fs.constants.COPYFILE_EXCL);
  }

  close(): void {
    this.reader.close();
  }
}
