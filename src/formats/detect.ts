/**
 * Which format a layer is in, decided from its descriptor alone (media type and annotations, both
 * covered by the manifest digest). docs/formats.md: "Decide from the manifest annotations first, then
 * confirm with the footer. Never guess from the footer alone."
 */
import { type Digest, isDigest } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { type Compression, layerMediaInfo } from '../manifest/media-types.js';

export const ZSTD_CHUNKED = {
  tocChecksum: 'io.github.containers.zstd-chunked.manifest-checksum',
  tocPosition: 'io.github.containers.zstd-chunked.manifest-position',
  tarSplitPosition: 'io.github.containers.zstd-chunked.tarsplit-position',
  legacyTocChecksum: 'io.containers.zstd-chunked.manifest-checksum',
  legacyTocPosition: 'io.containers.zstd-chunked.manifest-position',
} as const;

export const ESTARGZ = {
  tocDigest: 'containerd.io/snapshot/stargz/toc.digest',
  uncompressedSize: 'io.containers.estargz.uncompressed-size',
} as const;

/** The formats of the JSON report (docs/design.md §8). */
export type ReportFormat = 'tar' | 'gzip' | 'zstd' | 'zstd:chunked' | 'estargz' | 'encrypted';

export interface Position {
  offset: number;
  length: number;
  uncompressedLength: number;
}

export interface ZstdChunkedInfo {
  kind: 'zstd:chunked';
  /** 'current' (io.github.containers.*, with tar-split) or 'legacy' (skopeo 1.9, no tar-split). */
  generation: 'current' | 'legacy';
  /** sha256 of the compressed TOC bytes. */
  tocDigest: Digest;
  toc: Position & { type: number };
  tarSplit?: Position;
}

export interface EstargzInfo {
  kind: 'estargz';
  /** 'gzip' (classic) or 'zstd' (stargz-snapshotter's zstdchunked, located by a 48-byte footer). */
  compression: 'gzip' | 'zstd';
  /** sha256 of the uncompressed TOC JSON. */
  tocDigest: Digest;
  uncompressedSize?: number;
}

export type ChunkedInfo = ZstdChunkedInfo | EstargzInfo;

export interface LayerFormat {
  mediaType: string;
  compression: Compression;
  encrypted: boolean;
  chunked?: ChunkedInfo;
  /** Whether a partial pull could prove the DiffID (a tar-split is present). */
  hasTarSplit: boolean;
  report: ReportFormat;
}

export interface LayerDescriptorLike {
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string> | undefined;
}

export function detectLayerFormat(layer: LayerDescriptorLike): LayerFormat {
  const media = layerMediaInfo(layer.mediaType);
  if (!media) {
    throw new VerificationError(`layer ${layer.digest} has unsupported media type "${layer.mediaType}"`, {
      digest: layer.digest,
    });
  }
  const base = { mediaType: layer.mediaType, compression: media.compression, encrypted: media.encrypted };
  if (media.encrypted) return { ...base, hasTarSplit: false, report: 'encrypted' };
  const chunked = readChunkedAnnotations(layer, media.compression);
  if (!chunked) {
    const report: ReportFormat = media.compression === 'none' ? 'tar' : media.compression;
    return { ...base, hasTarSplit: false, report };
  }
  const hasTarSplit = chunked.kind === 'zstd:chunked' && chunked.tarSplit !== undefined;
  return { ...base, chunked, hasTarSplit, report: chunked.kind };
}

function readChunkedAnnotations(
  layer: LayerDescriptorLike,
  compression: Compression,
): ChunkedInfo | undefined {
  const a = layer.annotations ?? {};
  if (compression === 'zstd') {
    const checksum = a[ZSTD_CHUNKED.tocChecksum];
    const toc = a[ZSTD_CHUNKED.tocPosition];
    if (checksum && toc) {
      const tarSplit = a[ZSTD_CHUNKED.tarSplitPosition];
      return {
        kind: 'zstd:chunked',
        generation: 'current',
        tocDigest: annotationDigest(layer, ZSTD_CHUNKED.tocChecksum, checksum),
        toc: tocPosition(layer, ZSTD_CHUNKED.tocPosition, toc),
        ...(tarSplit ? { tarSplit: position(layer, ZSTD_CHUNKED.tarSplitPosition, tarSplit, 3) } : {}),
      };
    }
    const legacyChecksum = a[ZSTD_CHUNKED.legacyTocChecksum];
    const legacyToc = a[ZSTD_CHUNKED.legacyTocPosition];
    // stargz-snapshotter's zstd variant writes the older zstd:chunked annotations too; its
    // toc.digest says what it really is (docs/formats.md: treat it as eStargz).
    if (legacyChecksum && legacyToc && !a[ESTARGZ.tocDigest]) {
      return {
        kind: 'zstd:chunked',
        generation: 'legacy',
        tocDigest: annotationDigest(layer, ZSTD_CHUNKED.legacyTocChecksum, legacyChecksum),
        toc: tocPosition(layer, ZSTD_CHUNKED.legacyTocPosition, legacyToc),
      };
    }
  }
  const estargzToc = a[ESTARGZ.tocDigest];
  if ((compression === 'gzip' || compression === 'zstd') && estargzToc) {
    const size = a[ESTARGZ.uncompressedSize];
    const uncompressedSize = size !== undefined && /^\d+$/.test(size) ? Number(size) : undefined;
    return {
      kind: 'estargz',
      compression,
      tocDigest: annotationDigest(layer, ESTARGZ.tocDigest, estargzToc),
      ...(uncompressedSize !== undefined ? { uncompressedSize } : {}),
    };
  }
  return undefined;
}

function annotationDigest(layer: LayerDescriptorLike, key: string, value: string): Digest {
  if (!isDigest(value))
    throw new VerificationError(`layer ${layer.digest}: annotation ${key} is not a sha256 digest`, {
      digest: layer.digest,
    });
  return value;
}

function tocPosition(layer: LayerDescriptorLike, key: string, value: string): Position & { type: number } {
  const p = position(layer, key, value, 4);
  const type = Number(value.split(':')[3]);
  if (type !== 1)
    throw new VerificationError(
      `layer ${layer.digest}: annotation ${key} has TOC type ${type}, only 1 (JSON) is known`,
      { digest: layer.digest },
    );
  return { ...p, type };
}

/** `offset:length:uncompressedLength[:type]`, checked to lie inside the blob (docs/design.md §10). */
function position(layer: LayerDescriptorLike, key: string, value: string, fields: number): Position {
  const parts = value.split(':');
  if (parts.length !== fields || !parts.every((p) => /^\d{1,15}$/.test(p))) {
    throw new VerificationError(`layer ${layer.digest}: annotation ${key} "${value}" is malformed`, {
      digest: layer.digest,
    });
  }
  const [offset, length, uncompressedLength] = parts.map(Number) as [number, number, number];
  if (length === 0 || offset + length > layer.size) {
    throw new VerificationError(
      `layer ${layer.digest}: annotation ${key} points outside the ${layer.size}-byte blob`,
      { digest: layer.digest },
    );
  }
  return { offset, length, uncompressedLength };
}
