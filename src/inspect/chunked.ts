/** What `inspect` says about a chunked layer: its TOC, checked, and whether a partial pull is possible. */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import type { LayerFormat } from '../formats/detect.js';
import {
  ESTARGZ_FOOTER,
  estargzTocOffset,
  readEstargzToc,
  readZstdEstargzToc,
  zstdEstargzTocPosition,
} from '../formats/estargz.js';
import {
  checkLegacyFooter,
  countTocEntries,
  decompressBounded,
  LEGACY_FOOTER,
  metadataRanges,
  parseChunkedMetadata,
  TocUnverifiableError,
} from '../formats/zstd-chunked.js';
import { coalesceRanges, RangesNotHonouredError } from '../ranges/index.js';
import type { BlobRef, ImageSource } from '../transport/index.js';

export interface ChunkedDescription {
  kind: 'zstd:chunked' | 'estargz';
  generation?: 'current' | 'legacy';
  tocDigest: Digest;
  tarSplit: boolean;
  /** Entries in the TOC, when it could be read and verified. */
  entries?: number;
  /** Whether skiff could pull this layer partially from this source. */
  partialPossible: boolean;
  /** Why the TOC could not be read or verified, or why no partial pull. */
  note?: string;
}

/**
 * `partialCandidate` is the strategy module's answer to "could a verified TOC make this layer
 * partial?" (strategy.wantsToc): inspect only checks that the TOC is there and verifies.
 */
export async function describeChunked(
  source: ImageSource,
  layer: BlobRef,
  format: LayerFormat,
  partialCandidate: boolean,
): Promise<ChunkedDescription | undefined> {
  const chunked = format.chunked;
  if (!chunked) return undefined;
  const base = {
    kind: chunked.kind,
    ...(chunked.kind === 'zstd:chunked' ? { generation: chunked.generation } : {}),
    tocDigest: chunked.tocDigest,
    tarSplit: format.hasTarSplit,
  };
  try {
    if (chunked.kind === 'estargz' && chunked.compression === 'zstd') {
      const at = zstdEstargzTocPosition(
        await readRange(source, layer, layer.size - LEGACY_FOOTER, layer.size),
      );
      if (at.offset + at.length > layer.size)
        throw new TocUnverifiableError('eStargz footer points outside the blob');
      const compressed = await readRange(source, layer, at.offset, at.offset + at.length);
      const toc = readZstdEstargzToc(
        decompressBounded(compressed, at.uncompressedLength, 'eStargz TOC'),
        chunked.tocDigest,
      );
      return withoutTarSplit(base, toc.entries);
    }
    if (chunked.kind === 'estargz') {
      const tail = await readRange(source, layer, Math.max(0, layer.size - ESTARGZ_FOOTER), layer.size);
      const offset = estargzTocOffset(tail);
      const toc = await readEstargzToc(
        await readRange(source, layer, offset, layer.size - ESTARGZ_FOOTER),
        chunked.tocDigest,
      );
      return withoutTarSplit(base, toc.entries);
    }
    if (chunked.generation === 'legacy') {
      checkLegacyFooter(chunked, await readRange(source, layer, layer.size - LEGACY_FOOTER, layer.size));
      const entries = countTocEntries(
        await readRange(source, layer, chunked.toc.offset, chunked.toc.offset + chunked.toc.length),
        chunked,
      );
      return { ...base, entries, partialPossible: false, note: 'older zstd:chunked without tar-split' };
    }
    const parts = [];
    for (const range of coalesceRanges(metadataRanges(chunked, layer.size), { maxGap: 64 })) {
      parts.push({ start: range.start, bytes: await readRange(source, layer, range.start, range.end) });
    }
    const metadata = parseChunkedMetadata(chunked, layer.size, parts);
    return { ...base, entries: metadata.toc.entryCount, partialPossible: partialCandidate };
  } catch (error) {
    // Bytes that are not what was asked for (a lying Content-Range) leave the TOC unverified, as in pull.
    if (error instanceof TocUnverifiableError || error instanceof VerificationError)
      return { ...base, partialPossible: false, note: `TOC unverifiable: ${error.message}` };
    if (error instanceof RangesNotHonouredError)
      return { ...base, partialPossible: false, note: 'the source does not serve byte ranges' };
    throw error;
  }
}

/** eStargz has no tar-split: the TOC is described, a partial pull is never possible. */
function withoutTarSplit(
  base: Omit<ChunkedDescription, 'partialPossible'>,
  entries: number,
): ChunkedDescription {
  return {
    ...base,
    entries,
    partialPossible: false,
    note: 'no tar-split: the DiffID of a partial result could not be proven',
  };
}

async function readRange(source: ImageSource, layer: BlobRef, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await source.fetchRanges(layer, [{ start, end }], async (_range, data: Readable) => {
    for await (const piece of data) parts.push(piece as Buffer);
  });
  return Buffer.concat(parts);
}
