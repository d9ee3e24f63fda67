/**
 * Per-layer transforms of `mirror`: tar in, blob file out. The source blob is verified against its
 * digest as it streams, decompressed, checked against the DiffID the config commits to (or the
 * DiffID is computed, for schema1), and recompressed into a temporary file whose digest names the
 * new blob. zstd:chunked output comes from the chunked writer (src/formats/zstd-chunked-writer.ts),
 * which refuses tars containers/storage could not pull back (UnconvertibleLayerError, exit 4).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import zlib from 'node:zlib';
import { type Digest, DigestStream, Hasher } from '../digest/index.js';
import { SkiffError, VerificationError, writeRefusedErrno } from '../errors/index.js';
import { DEFAULT_MAX_LAYER_SIZE, decompressor, TarSizeCap } from '../formats/compression.js';
import { writeZstdChunked } from '../formats/zstd-chunked-writer.js';
import { zstd } from '../formats/zstd-native.js';
import type { Compression } from '../manifest/index.js';
import { sniffCompression } from '../transport/docker-archive.js';
import { type LayerTarget, targetMediaType } from './layers.js';

/** The source side of a layer: how to open it, and what it must hash to. */
export interface LayerSourceBlob {
  digest: Digest;
  size?: number | undefined;
  open(signal?: AbortSignal): Promise<Readable>;
  /** Bytes its tar may decompress to (--max-layer-size; DEFAULT_MAX_LAYER_SIZE when absent). */
  maxTarSize?: number | undefined;
}

export interface ConvertedLayer {
  file: string;
  digest: Digest;
  size: number;
  diffID: Digest;
  mediaType: string;
  annotations: Record<string, string>;
}

/**
 * The layer's tar stream: the blob verified against its digest, then decompressed. `sniff` is for
 * schema1 layers, whose manifest does not say how they are compressed.
 */
export function tarStream(
  raw: Readable,
  blob: LayerSourceBlob,
  compression: Compression | 'sniff',
): Readable {
  const verified = verifiedStream(raw, blob);
  if (compression === 'sniff') return capped(Readable.from(sniffDecompress(verified)), blob);
  const decompress = watched(decompressor(compression));
  return capped(decompress ? pipeline(verified, decompress, () => {}) : verified, blob);
}

/** The tar, failing once it grows past the blob's bound (a decompression bomb) before passing more on. */
function capped(tar: Readable, blob: Pick<LayerSourceBlob, 'digest' | 'maxTarSize'>): Readable {
  const bound = { bytes: blob.maxTarSize ?? DEFAULT_MAX_LAYER_SIZE, by: '--max-layer-size' };
  return pipeline(tar, new TarSizeCap(bound, blob.digest), () => {});
}

/** The blob's bytes, failing at the end unless they hash to its digest. */
function verifiedStream(raw: Readable, blob: LayerSourceBlob): Readable {
  const verify = new DigestStream({
    digest: blob.digest,
    ...(blob.size === undefined ? {} : { size: blob.size }),
    what: `layer ${blob.digest}`,
  });
  return pipeline(raw, verify, () => {});
}

/** Errors raised by a decompressor: bad compressed data, which is a verification failure. */
const decompressionErrors = new WeakSet<object>();

/**
 * Records the decompressor's errors (the listener runs before pipeline passes them downstream).
 * A refused write downstream (a full disk) is destroyed into it too, and is no decompression error.
 */
function watched(decompress: Transform | undefined): Transform | undefined {
  decompress?.once('error', (error) => {
    if (!writeRefusedErrno(error)) decompressionErrors.add(error);
  });
  return decompress;
}

/** Converts one layer into a file in `dir`; the caller uploads it and removes it. */
export async function convertLayer(
  blob: LayerSourceBlob,
  compression: Compression | 'sniff',
  expectedDiffID: Digest | undefined,
  to: LayerTarget,
  dir: string,
  signal?: AbortSignal,
): Promise<ConvertedLayer> {
  const file = path.join(dir, `${blob.digest.slice(7, 23)}-${to.replace(':', '-')}`);
  try {
    const tar = tarStream(await blob.open(signal), blob, compression);
    const result =
      to === 'zstd:chunked' ? await writeChunked(tar, file) : await compressTo(tar, to, file, signal);
    if (expectedDiffID && result.diffID !== expectedDiffID) {
      throw new VerificationError(
        `DiffID mismatch: the config expects ${expectedDiffID}, the layer's tar hashes to ${result.diffID}`,
        { digest: blob.digest },
      );
    }
    return { file, ...result };
  } catch (error) {
    await fs.promises.rm(file, { force: true });
    throw asLayerError(error, blob.digest);
  }
}

async function compressTo(
  tar: Readable,
  to: 'gzip' | 'zstd' | 'tar',
  file: string,
  signal?: AbortSignal,
): Promise<Omit<ConvertedLayer, 'file'>> {
  const diff = new DigestStream();
  const out = new DigestStream();
  const stages: Transform[] = [diff];
  if (to === 'gzip') stages.push(zlib.createGzip());
  if (to === 'zstd') stages.push(new (zstd().CompressStream)({ compressionLevel: 3 }));
  const run = pipelineAsync as unknown as (...args: unknown[]) => Promise<void>;
  await run(tar, ...stages, out, fs.createWriteStream(file), ...(signal ? [{ signal }] : []));
  return {
    digest: out.digest,
    size: out.bytes,
    diffID: diff.digest,
    mediaType: targetMediaType(to),
    annotations: {},
  };
}

function writeChunked(tar: Readable, file: string): Promise<Omit<ConvertedLayer, 'file'>> {
  return writeZstdChunked(tar as AsyncIterable<Buffer>, file);
}

/** The DiffID of a layer blob (schema1: the destination has the blob, but the config needs its DiffID). */
export async function layerDiffID(
  blob: LayerSourceBlob,
  signal?: AbortSignal,
): Promise<{ diffID: Digest; compression: Compression }> {
  const hasher = new Hasher();
  let compression: Compression = 'none';
  try {
    const found = (c: Compression) => {
      compression = c;
    };
    const tar = sniffDecompress(verifiedStream(await blob.open(signal), blob), found);
    for await (const chunk of capped(Readable.from(tar), blob)) hasher.update(chunk);
  } catch (error) {
    throw asLayerError(error, blob.digest);
  }
  return { diffID: hasher.digest(), compression };
}

/**
 * A pass-through that also decompresses what flows through it on the side and hashes the result:
 * a schema1 layer is uploaded as it is while its DiffID is computed, in one read.
 */
export class DiffIdTap extends Transform {
  private readonly side = new PassThrough();
  private readonly hashing: Promise<{ diffID: Digest; compression: Compression }>;
  private result: { diffID: Digest; compression: Compression } | undefined;

  constructor(blob: Pick<LayerSourceBlob, 'digest' | 'maxTarSize'>) {
    super();
    let compression: Compression = 'none';
    const hasher = new Hasher();
    this.hashing = (async () => {
      const tar = sniffDecompress(this.side, (c) => {
        compression = c;
      });
      for await (const chunk of capped(Readable.from(tar), blob)) hasher.update(chunk);
      return { diffID: hasher.digest(), compression };
    })();
    // A broken layer fails the copy rather than stalling it behind a side stream nobody drains.
    this.hashing.catch((error: unknown) => this.destroy(error as Error));
  }

  get diffID(): { diffID: Digest; compression: Compression } {
    if (!this.result) throw new Error('DiffIdTap: read before the end of the stream');
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.side.write(chunk)) done(null, chunk);
    else this.side.once('drain', () => done(null, chunk));
  }

  override _flush(done: TransformCallback): void {
    this.side.end();
    this.hashing.then(
      (result) => {
        this.result = result;
        done();
      },
      (error: Error) => done(error),
    );
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    this.side.destroy();
    done(error);
  }
}

/** Decompresses gzip or zstd, recognised by their magic bytes; anything else passes as a plain tar. */
export async function* sniffDecompress(
  input: AsyncIterable<Buffer>,
  onCompression?: (compression: Compression) => void,
): AsyncGenerator<Buffer> {
  const iterator = input[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let length = 0;
  while (length < 4) {
    const next = await iterator.next();
    if (next.done) break;
    head.push(next.value);
    length += next.value.length;
  }
  const first = Buffer.concat(head);
  const compression = sniffCompression(first);
  onCompression?.(compression);
  const everything = (async function* () {
    if (first.length > 0) yield first;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  })();
  const decompress = watched(decompressor(compression));
  if (!decompress) {
    yield* everything;
    return;
  }
  yield* pipeline(Readable.from(everything), decompress, () => {}) as AsyncIterable<Buffer>;
}

/** Bytes that do not decompress are the publisher's fault, not the network's. */
function asLayerError(error: unknown, digest: Digest): unknown {
  if (error instanceof SkiffError) return error.withContext({ digest });
  if (typeof error === 'object' && error !== null && decompressionErrors.has(error))
    return new VerificationError(`layer ${digest} does not decompress: ${(error as Error).message}`, {
      digest,
    });
  return error;
}
