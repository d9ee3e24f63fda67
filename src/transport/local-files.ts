/**
 * Blobs in local files: read whole or by byte ranges (local files are seekable, and a blob may be
 * a window of a bigger file, as in a docker archive), and written atomically after verification.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, DigestStream, sha256 } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import type { ByteRange, RangeConsumer } from '../ranges/index.js';
import type { BlobRef } from './source.js';

export async function openLocalBlob(file: string, digest: Digest): Promise<Readable> {
  try {
    await fsp.access(file, fs.constants.R_OK);
  } catch {
    throw new NotFoundError(`blob ${digest} not found at ${file}`, { digest, path: file });
  }
  return fs.createReadStream(file, { highWaterMark: 1 << 20 });
}

export async function localFileSize(file: string): Promise<number | undefined> {
  return (await fsp.stat(file).catch(() => undefined))?.size;
}

/** Where a blob sits inside a bigger file (a member of a tar archive). */
export interface FileWindow {
  offset: number;
  size: number;
}

export async function readLocalRanges(
  file: string,
  digest: Digest,
  ranges: readonly ByteRange[],
  onRange: RangeConsumer,
  window?: FileWindow,
): Promise<void> {
  const base = window?.offset ?? 0;
  const size = window?.size ?? (await fsp.stat(file).catch(() => undefined))?.size;
  if (size === undefined)
    throw new NotFoundError(`blob ${digest} not found at ${file}`, { digest, path: file });
  for (const range of [...ranges].sort((a, b) => a.start - b.start)) {
    if (range.end > size) {
      throw new VerificationError(
        `blob ${digest}: range ${range.start}-${range.end} is beyond its ${size} bytes`,
        { digest },
      );
    }
    if (range.end === range.start) {
      await onRange(range, Readable.from([]));
      continue;
    }
    const stream = fs.createReadStream(file, {
      start: base + range.start,
      end: base + range.end - 1,
      highWaterMark: 1 << 20,
    });
    try {
      await onRange(range, stream);
    } finally {
      stream.destroy();
    }
  }
}

/**
 * Writes a blob to `target` through a temporary file beside it, renamed into place only once the
 * content hashed to `digest` (and `size`, when known): readers never see a partial or wrong blob.
 */
export async function writeVerifiedFile(
  target: string,
  digest: Digest,
  content: Readable | Buffer,
  size?: number,
): Promise<void> {
  const temp = path.join(path.dirname(target), `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    if (Buffer.isBuffer(content)) {
      if (sha256(content) !== digest || (size !== undefined && content.length !== size))
        throw new VerificationError(`blob ${digest}: content does not match its digest`, { digest });
      await fsp.writeFile(temp, content);
    } else {
      const verify = new DigestStream({
        digest,
        ...(size === undefined ? {} : { size }),
        what: `blob ${digest}`,
      });
      await pipeline(content, verify, fs.createWriteStream(temp));
    }
    await fsp.rename(temp, target);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
}

/** Writes a small file (a manifest, an index) atomically. */
export async function writeFileAtomic(target: string, content: Buffer | string): Promise<void> {
  const temp = path.join(path.dirname(target), `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    await fsp.writeFile(temp, content);
    await fsp.rename(temp, target);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
}

/**
 * What every source of local files shares: blobs are files, read whole or by ranges. Subclasses
 * say where a blob lives and how manifests are found.
 */
export abstract class LocalBlobSource {
  readonly rangeSupport = 'yes' as const;

  abstract blobPath(digest: Digest): string;

  blobSize(digest: Digest): Promise<number | undefined> {
    return localFileSize(this.blobPath(digest));
  }

  openBlob(blob: BlobRef): Promise<Readable> {
    return openLocalBlob(this.blobPath(blob.digest), blob.digest);
  }

  fetchRanges(blob: BlobRef, ranges: readonly ByteRange[], onRange: RangeConsumer): Promise<void> {
    return readLocalRanges(this.blobPath(blob.digest), blob.digest, ranges, onRange);
  }

  async close(): Promise<void> {}
}
