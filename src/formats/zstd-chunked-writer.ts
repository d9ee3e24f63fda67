/**
 * Converts a layer tar into zstd:chunked, current generation, as containers/storage (≥ 1.5x,
 * skopeo 1.18) writes it, so that skopeo/podman and skiff can both pull the result partially:
 *
 *   [frame: tar bytes up to a file's content] [frame per chunk of that file's content] ...
 *   [frame: the remaining tar bytes] [skippable: TOC] [skippable: tar-split] [skippable: footer]
 *
 * `zstd -d` of the blob gives back the input tar byte for byte (the DiffID), each file or chunk
 * can be fetched and decompressed alone from the range the TOC gives, and the tar-split rebuilds
 * the tar from the files. Everything streams: a layer's content never sits in memory, only its
 * metadata (the TOC and tar-split are compressed as they grow). The blob body is compressed and
 * written by a worker thread while this thread parses, chunks and hashes.
 */
import { createHash, type Hash } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { Digest } from '../digest/index.js';
import { BlobWorker } from './blob-worker.js';
import { type ChunkSink, ContentChunker } from './chunker.js';
import { Crc64 } from './crc64.js';
import { ZSTD_CHUNKED } from './detect.js';
import { readTar, type TarToken } from './tar.js';
import { formatGoTime, type GoHeader, GoHeaderReader, UnconvertibleLayerError } from './tar-go-header.js';
import { BLOCK, ENTRY_TYPES, type EntryType, isZeroBlock } from './tar-header.js';
import type { TocEntry } from './zstd-chunked.js';
import { TarSplitWriter, TocWriter } from './zstd-chunked-metadata.js';
import { SKIPPABLE_HEADER, skippableHeader } from './zstd-frames.js';

export { UnconvertibleLayerError } from './tar-go-header.js';

export interface ConvertedLayer {
  digest: Digest;
  size: number;
  diffID: Digest;
  mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd';
  annotations: Record<string, string>;
}

export interface ZstdChunkedOptions {
  /** zstd level for every frame (default 3, zstd's own default). */
  level?: number;
}

const FOOTER_SIZE = 64;
const FOOTER_MAGIC = Buffer.from('GNUlInUx', 'latin1');
const TOC_TYPE_JSON = 1;

/**
 * Reads a layer tar and writes it to `outFile` as zstd:chunked. On failure the partial file is
 * removed. Throws UnconvertibleLayerError for tars containers/storage could not pull back
 * (duplicate paths, global PAX headers, entry types without a TOC type).
 */
export async function writeZstdChunked(
  tar: AsyncIterable<Buffer>,
  outFile: string,
  options: ZstdChunkedOptions = {},
): Promise<ConvertedLayer> {
  const level = options.level ?? 3;
  let writer: ChunkedLayerWriter | undefined;
  const blob = new BlobWorker(outFile, level, () => writer?.tocProgress());
  writer = new ChunkedLayerWriter(blob, level);
  try {
    for await (const token of readTar(tar)) {
      writer.token(token);
      await blob.pace();
    }
    return await writer.finish();
  } catch (error) {
    await blob.stop();
    await fsp.rm(outFile, { force: true });
    throw error;
  }
}

interface ChunkRecord {
  chunkOffset: number;
  /** The index of the chunk's frame in the blob (its offsets are known once the worker reports). */
  frame: number;
  size: number;
  digest: Digest;
  zeros: boolean;
}

/** One regular file's content: hashed whole, chunked, each chunk compressed into its own frame. */
class FileContent implements ChunkSink {
  private readonly chunker = new ContentChunker(this);
  private readonly crc = new Crc64();
  /** The whole file's hash: a copy of the first chunk's, so a one-chunk file is hashed once. */
  private fileHash: Hash | undefined;
  private chunkHash: Hash | undefined;
  private chunkFrame = 0;
  private chunkSize = 0;
  private contentOffset = 0;
  readonly chunks: ChunkRecord[] = [];

  constructor(private readonly blob: BlobWorker) {}

  push(data: Buffer): void {
    this.crc.update(data);
    this.chunker.push(data);
  }

  write(bytes: Uint8Array): void {
    if (!this.chunkHash) {
      // A chunk starts a frame of its own: end whatever frame (tar headers) is open.
      this.blob.endFrame();
      this.chunkFrame = this.blob.frames;
      this.chunkHash = createHash('sha256');
    }
    this.chunkHash.update(bytes);
    this.fileHash?.update(bytes);
    this.blob.write(bytes);
    this.chunkSize += bytes.length;
  }

  cut(kind: 'data' | 'zeros'): void {
    if (!this.chunkHash) return;
    this.blob.endFrame();
    this.fileHash ??= this.chunkHash.copy();
    this.chunks.push({
      chunkOffset: this.contentOffset,
      frame: this.chunkFrame,
      size: this.chunkSize,
      digest: `sha256:${this.chunkHash.digest('hex')}`,
      zeros: kind === 'zeros',
    });
    this.contentOffset += this.chunkSize;
    this.chunkHash = undefined;
    this.chunkSize = 0;
  }

  /** Ends the content; returns the file digest and its tar-split CRC. */
  finish(): { digest: Digest; crc: Buffer } {
    this.chunker.finish();
    return { digest: `sha256:${this.fileHash!.digest('hex')}`, crc: this.crc.sum() };
  }
}

/** The TOC's name for each kind of entry. */
const TOC_TYPES: Record<EntryType, TocEntry['type']> = {
  file: 'reg',
  hardlink: 'hardlink',
  symlink: 'symlink',
  char: 'char',
  block: 'block',
  dir: 'dir',
  fifo: 'fifo',
};

/**
 * The TOC type of a typeflag after Go's fix-up of NUL. containers-storage has none for `7`
 * (contiguous file), which Go's reader leaves as it is, so such a layer cannot be converted.
 */
function tocType(typeflag: string): TocEntry['type'] | undefined {
  const kind = typeflag === '7' ? undefined : ENTRY_TYPES[typeflag];
  return kind && TOC_TYPES[kind];
}

/** The entry being read: its Go view and, for a regular file with content, the content state. */
interface CurrentEntry {
  header: GoHeader;
  type: TocEntry['type'];
  content: FileContent | undefined;
}

/** A finished entry waiting for the worker to report where its frames ended. */
interface PendingTocEntry {
  /** type, name and the tar metadata, ready to serialise. */
  fields: TocEntry;
  chunks: ChunkRecord[];
  digest: Digest | undefined;
}

/** Turns skiff's tar tokens into the blob, the TOC and the tar-split. */
class ChunkedLayerWriter {
  private readonly headers = new GoHeaderReader();
  private readonly toc: TocWriter;
  private readonly tarSplit: TarSplitWriter;
  /** Raw tar bytes since the last file content: the next tar-split segment. */
  private segment: Buffer[] = [];
  private segmentBytes = 0;
  private lastRaw: Buffer | undefined;
  private current: CurrentEntry | undefined;
  /** Set once the end-of-archive block has passed: later bytes are trailer. */
  private ended = false;
  /** Where, in the pending segment, the bytes after the last entry begin, and its padding. */
  private afterEntry = 0;
  private padding = 0;
  /** TOC entries in tar order, written out as soon as their offsets are known. */
  private pendingToc: PendingTocEntry[] = [];

  constructor(
    private readonly blob: BlobWorker,
    level: number,
  ) {
    this.toc = new TocWriter(level);
    this.tarSplit = new TarSplitWriter(level);
  }

  token(token: TarToken): void {
    if (token.kind === 'raw') this.raw(token.bytes);
    else if (token.kind === 'entry') this.entry();
    else if (token.kind === 'end-entry') this.endEntry();
    // A stream read from bytes (readTar) never holds content back.
    else if (token.kind === 'data') this.content().push(token.bytes);
  }

  /** The content of the current entry; skiff's reader gives content only to what Go calls reg. */
  private content(): FileContent {
    const content = this.current?.content;
    if (!content) {
      // e.g. a legacy '\0' entry named like a directory but carrying data: Go reads a dir there.
      throw new UnconvertibleLayerError(
        `tar entry "${this.current?.header.name}" has content but is not a file`,
      );
    }
    return content;
  }

  /** Writes the pending TOC entries whose frames the worker has finished, keeping tar order. */
  tocProgress(): void {
    const known = this.blob.ends.length;
    let done = 0;
    for (const pending of this.pendingToc) {
      const last = pending.chunks.at(-1);
      if (last && last.frame >= known) break;
      for (const entry of tocEntries(pending, this.blob)) this.toc.add(entry);
      done++;
    }
    if (done > 0) this.pendingToc = this.pendingToc.slice(done);
  }

  /** Header, extension, padding and trailer bytes: into the open metadata frame and the segment. */
  private raw(bytes: Buffer): void {
    this.blob.write(bytes);
    if (!this.current && !this.ended) {
      if (bytes.length === BLOCK && isZeroBlock(bytes)) {
        this.ended = true;
      } else if (GoHeaderReader.isExtension(bytes)) {
        this.headers.extension(bytes);
      }
    }
    this.segment.push(bytes);
    this.segmentBytes += bytes.length;
    this.lastRaw = bytes;
  }

  private entry(): void {
    // skiff's reader yields each header block as the raw token right before its entry.
    const header = this.headers.header(this.lastRaw!);
    const type = tocType(header.typeflag);
    if (!type) {
      throw new UnconvertibleLayerError(
        `tar entry "${header.name.toString('utf8')}" has type "${header.typeflag}", which zstd:chunked cannot represent`,
      );
    }
    this.flushSegment();
    const content = type === 'reg' && header.size > 0 ? new FileContent(this.blob) : undefined;
    this.current = { header, type, content };
  }

  private endEntry(): void {
    const { header, type, content } = this.current!;
    this.current = undefined;
    const file = content?.finish();
    const fields = { type, name: header.name.toString('utf8'), ...metadataFields(header) };
    this.pendingToc.push({ fields, chunks: content?.chunks ?? [], digest: file?.digest });
    this.tocProgress();
    this.tarSplit.file(header.name, header.size, file?.crc);
    this.afterEntry = this.segmentBytes;
    this.padding = (BLOCK - (header.size % BLOCK)) % BLOCK;
  }

  private flushSegment(): void {
    this.tarSplit.segment(Buffer.concat(this.segment, this.segmentBytes));
    this.segment = [];
    this.segmentBytes = 0;
  }

  async finish(): Promise<ConvertedLayer> {
    this.trailerSegments();
    this.blob.endFrame();
    await this.blob.settle();
    this.tocProgress();
    const tarSplit = this.tarSplit.finish();
    const tarSplitDigest = sha256Digest(tarSplit.compressed);
    const toc = this.toc.finish(tarSplitDigest);
    const tocOffset = (this.blob.ends.at(-1) ?? 0) + SKIPPABLE_HEADER;
    const tarSplitOffset = tocOffset + toc.compressed.length + SKIPPABLE_HEADER;
    const positions = [
      tocOffset,
      toc.compressed.length,
      toc.uncompressed,
      TOC_TYPE_JSON,
      tarSplitOffset,
      tarSplit.compressed.length,
      tarSplit.uncompressed,
    ];
    const { digest, size, diffID } = await this.blob.finish([
      ...skippable(toc.compressed),
      ...skippable(tarSplit.compressed),
      ...skippable(footer(positions)),
    ]);
    return {
      digest,
      size,
      diffID,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
      annotations: {
        [ZSTD_CHUNKED.tocChecksum]: sha256Digest(toc.compressed),
        [ZSTD_CHUNKED.tocPosition]: positions.slice(0, 4).join(':'),
        [ZSTD_CHUNKED.tarSplitPosition]: positions.slice(4, 7).join(':'),
      },
    };
  }

  /**
   * The bytes after the last entry, split as Go's tar-split does: one segment with the last
   * padding and the end-of-archive blocks it reads (up to two), then one with anything beyond.
   */
  private trailerSegments(): void {
    const rest = Buffer.concat(this.segment, this.segmentBytes);
    this.segment = [];
    this.segmentBytes = 0;
    let end = rest.length;
    if (this.ended) {
      const blocksStart = this.afterEntry + this.padding + BLOCK;
      end = Math.min(rest.length, blocksStart + (rest.length - blocksStart >= BLOCK ? BLOCK : 0));
    }
    this.tarSplit.segment(rest.subarray(0, end));
    if (end < rest.length) this.tarSplit.segment(rest.subarray(end));
  }
}

/** The TOC entries of one tar entry, fields in the order and with the omissions Go's encoder uses. */
function tocEntries(pending: PendingTocEntry, blob: BlobWorker): TocEntry[] {
  const { fields, chunks, digest } = pending;
  const main: TocEntry = { ...fields };
  if (chunks.length === 0) return [main];
  const endOffset = blob.ends[chunks.at(-1)!.frame]!;
  const placed: TocEntry = { ...main, digest, offset: blob.frameStart(chunks[0]!.frame), endOffset };
  if (chunks.length === 1) return [placed];
  // Several chunks: the reg entry describes the first, a "chunk" entry each of the others.
  const rest = chunks.slice(1).map(
    (c): TocEntry => ({
      type: 'chunk',
      name: fields.name,
      offset: blob.frameStart(c.frame),
      ...chunkFields(c),
    }),
  );
  return [{ ...placed, ...chunkFields(chunks[0]!) }, ...rest];
}

/** The TOC fields that come from the tar header, after type and name. */
type TocMetadata = Omit<
  TocEntry,
  | 'type'
  | 'name'
  | 'digest'
  | 'offset'
  | 'endOffset'
  | 'chunkSize'
  | 'chunkOffset'
  | 'chunkDigest'
  | 'chunkType'
>;

function metadataFields(header: GoHeader): TocMetadata {
  const fields: TocMetadata = {};
  // Go's encoder omits empty values (omitempty).
  const set = <K extends keyof TocMetadata>(key: K, value: TocMetadata[K]) => {
    if (value !== 0 && value !== '' && value !== undefined) fields[key] = value;
  };
  set('linkName', header.linkName.toString('utf8'));
  set('mode', header.mode);
  set('size', header.size);
  set('uid', header.uid);
  set('gid', header.gid);
  set('modtime', formatGoTime(header.modTime));
  set('accesstime', header.accessTime && formatGoTime(header.accessTime));
  set('changetime', header.changeTime && formatGoTime(header.changeTime));
  set('devMajor', header.devMajor);
  set('devMinor', header.devMinor);
  if (header.xattrs.size > 0) {
    // Go writes map keys sorted; values are base64 of the raw bytes.
    const keys = [...header.xattrs.keys()].sort();
    fields.xattrs = Object.fromEntries(keys.map((k) => [k, header.xattrs.get(k)!.toString('base64')]));
  }
  return fields;
}

function chunkFields(
  chunk: ChunkRecord,
): Pick<TocEntry, 'chunkSize' | 'chunkOffset' | 'chunkDigest' | 'chunkType'> {
  return {
    chunkSize: chunk.size,
    ...(chunk.chunkOffset > 0 ? { chunkOffset: chunk.chunkOffset } : {}),
    chunkDigest: chunk.digest,
    ...(chunk.zeros ? { chunkType: 'zeros' } : {}),
  };
}

/** A skippable frame around `payload`: the 8-byte header, then the payload. */
function skippable(payload: Buffer): Buffer[] {
  return [skippableHeader(payload.length), payload];
}

function footer(positions: number[]): Buffer {
  const out = Buffer.alloc(FOOTER_SIZE);
  positions.forEach((value, i) => {
    out.writeBigUInt64LE(BigInt(value), i * 8);
  });
  FOOTER_MAGIC.copy(out, 56);
  return out;
}

function sha256Digest(data: Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
