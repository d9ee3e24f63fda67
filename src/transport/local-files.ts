/** Reading blobs from local files: whole, or by byte ranges (local files are seekable). */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import type { ByteRange } from './ranges.js';
import type { RangeConsumer } from './source.js';

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

export async function readLocalRanges(
  file: string,
  digest: Digest,
  ranges: readonly ByteRange[],
  onRange: RangeConsumer,
): Promise<void> {
  const size = (await fsp.stat(file).catch(() => undefined))?.size;
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
      start: range.start,
      end: range.end - 1,
      highWaterMark: 1 << 20,
    });
    try {
      await onRange(range, stream);
    } finally {
      stream.destroy();
    }
  }
}
