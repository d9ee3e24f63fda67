/**
 * The strategy for copies to blob destinations (registry, oci:, dir:, docker-archive:): what
 * happens to each layer on the way (copied as it is, converted, referenced, or refused), and how
 * each blob reaches the destination (skipped, mounted, or copied). Pure, like the pull strategy
 * beside it: facts in (the descriptor, what the user asked, what the destination can do, what the
 * run has found out), a decision with its reason out. The engine never decides on its own; when a
 * run reveals a fact (a mount the registry declined), it asks again.
 */
import type { Digest } from '../digest/index.js';
import type { Compression } from '../manifest/index.js';

export const CONVERT_TARGETS = ['gzip', 'zstd', 'zstd:chunked'] as const;
export type ConvertTarget = (typeof CONVERT_TARGETS)[number];
/** The form a layer must take at the destination: a --convert target, or `tar` (docker-archive). */
export type LayerTarget = ConvertTarget | 'tar';

/** Why a layer goes to the destination the way it does (docs/design.md, "Copy strategy"). */
export const COPY_REASONS = [
  'as-is',
  'already-in-form',
  'not-a-layer',
  'encrypted-kept',
  'non-distributable',
  'convert-requested',
  'destination-uncompressed',
  'encrypt-requested',
] as const;
export type CopyReason = (typeof COPY_REASONS)[number];

/** Why a blob reaches the destination the way it does. */
export const BLOB_REASONS = ['present', 'placed-this-run', 'mountable', 'absent', 'mount-declined'] as const;
export type BlobReason = (typeof BLOB_REASONS)[number];

/** What the descriptor says about a layer (media type and annotations, covered by the manifest digest). */
export interface CopyLayerFacts {
  digest: Digest;
  mediaType: string;
  /** The layer's compression; undefined when the media type is not a layer's. */
  compression: Compression | undefined;
  encrypted: boolean;
  /** Already zstd:chunked (annotations present). */
  zstdChunked: boolean;
  /** Non-distributable, served from its URLs. */
  foreign: boolean;
}

/** What the destination can do, as far as layers are concerned (DestinationTraits' subset). */
export interface CopyDestinationFacts {
  /** 'as-is': blobs keep their bytes. 'uncompressed': plain tars named by their DiffID only. */
  layers: 'as-is' | 'uncompressed';
}

export type CopyLayerDecision =
  | { action: 'copy'; reasons: CopyReason[]; note?: string | undefined }
  | { action: 'convert'; to: LayerTarget; from: Compression; reasons: CopyReason[] }
  | { action: 'encrypt'; reasons: CopyReason[] }
  | { action: 'reference'; reasons: CopyReason[]; note: string }
  | { action: 'refuse'; reasons: CopyReason[]; message: string };

/**
 * Decides one layer of a copy, before anything is fetched. `encrypt`: --encryption-key was given
 * and --encrypt-layer (if any) selects this layer (`layersToEncrypt`).
 */
export function decideCopyLayer(
  layer: CopyLayerFacts,
  destination: CopyDestinationFacts,
  convert: ConvertTarget | undefined,
  encrypt = false,
): CopyLayerDecision {
  const uncompressed = destination.layers === 'uncompressed';
  const target: LayerTarget | undefined = uncompressed ? 'tar' : convert;
  const asked: CopyReason = uncompressed ? 'destination-uncompressed' : 'convert-requested';
  if (layer.foreign) {
    if (uncompressed)
      return refuse(layer, 'non-distributable', 'a non-distributable layer served from its URLs');
    return {
      action: 'reference',
      reasons: ['non-distributable'],
      note: 'non-distributable layers are referenced, not copied',
    };
  }
  if (layer.compression === undefined) {
    if (uncompressed) return refuse(layer, 'not-a-layer', `media type ${layer.mediaType} is not a layer`);
    return {
      action: 'copy',
      reasons: ['not-a-layer'],
      ...(target || encrypt ? { note: `${layer.mediaType} copied as it is (not a layer)` } : {}),
    };
  }
  if (!target && !encrypt) return { action: 'copy', reasons: ['as-is'] };
  if (layer.encrypted) {
    // The HMAC and keys cover the encrypted bytes: converting would need the key and break them;
    // encrypting again would hide the recipients the layer already has.
    if (uncompressed) return refuse(layer, 'encrypted-kept', 'the layer is encrypted');
    return {
      action: 'copy',
      reasons: ['encrypted-kept'],
      note: encrypt
        ? 'already-encrypted layers copied as they are, not encrypted again'
        : 'encrypted layers copied as they are, not converted',
    };
  }
  if (encrypt) {
    if (uncompressed) return refuse(layer, 'encrypt-requested', 'encryption was asked for');
    // Encryption wraps the blob as it is (ocicrypt does the same): its compression stays.
    return { action: 'encrypt', reasons: ['encrypt-requested'] };
  }
  if (!target) return { action: 'copy', reasons: ['as-is'] };
  if (alreadyIn(layer, target)) return { action: 'copy', reasons: ['already-in-form'] };
  return { action: 'convert', to: target, from: layer.compression, reasons: [asked] };
}

/**
 * A layer of a schema1 image being converted to OCI: its manifest states neither its compression
 * nor its DiffID, so it is converted (from whatever its bytes turn out to be) when a form is asked
 * for, and otherwise copied as it is while its DiffID is computed on the way.
 */
export function decideSchema1Layer(
  destination: CopyDestinationFacts,
  convert: ConvertTarget | undefined,
):
  | { action: 'convert'; to: LayerTarget; from: 'sniff'; reasons: CopyReason[] }
  | { action: 'copy'; reasons: CopyReason[] } {
  if (destination.layers === 'uncompressed')
    return { action: 'convert', to: 'tar', from: 'sniff', reasons: ['destination-uncompressed'] };
  if (convert) return { action: 'convert', to: convert, from: 'sniff', reasons: ['convert-requested'] };
  return { action: 'copy', reasons: ['as-is'] };
}

/**
 * Which of an image's `count` layers --encrypt-layer selects, as skopeo reads it: no indices means
 * every layer; a negative index counts from the end (-1 is the last). An index outside the image
 * is a usage error, returned as a message rather than silently encrypting less than asked.
 */
export function layersToEncrypt(
  count: number,
  indices: readonly number[] | undefined,
): { encrypt: boolean[] } | { error: string } {
  if (!indices || indices.length === 0) return { encrypt: Array<boolean>(count).fill(true) };
  const encrypt = Array<boolean>(count).fill(false);
  for (const index of indices) {
    const at = index < 0 ? count + index : index;
    if (at < 0 || at >= count) return { error: `--encrypt-layer ${index}: the image has ${count} layers` };
    encrypt[at] = true;
  }
  return { encrypt };
}

function alreadyIn(layer: CopyLayerFacts, target: LayerTarget): boolean {
  switch (target) {
    case 'tar':
      return layer.compression === 'none';
    case 'gzip':
    case 'zstd':
      return layer.compression === target;
    case 'zstd:chunked':
      return layer.compression === 'zstd' && layer.zstdChunked;
  }
}

function refuse(layer: CopyLayerFacts, reason: CopyReason, why: string): CopyLayerDecision {
  return {
    action: 'refuse',
    reasons: [reason],
    message: `a docker archive holds plain tar layers; layer ${layer.digest} cannot go in: ${why}`,
  };
}

/** What is known about one blob when it is about to be moved. */
export interface BlobFacts {
  /** The destination's existing-blob check found it (undefined: the destination cannot tell). */
  present: boolean | undefined;
  /** This run already placed it at this destination (the run-wide record). */
  placedThisRun: boolean;
  /** A repository on the destination's registry is known to hold it (the source, or one this run wrote). */
  mountCandidate: boolean;
  /** The destination links blobs across repositories (registry blob mount). */
  blobMount: boolean;
  /** Run-time fact: the destination declined the mount. */
  mountDeclined?: boolean | undefined;
}

export interface BlobDecision {
  action: 'skip' | 'mount' | 'copy';
  reason: BlobReason;
}

/** Decides how one blob reaches the destination; asked again when a mount is declined. */
export function decideBlob(blob: BlobFacts): BlobDecision {
  if (blob.placedThisRun) return { action: 'skip', reason: 'placed-this-run' };
  if (blob.present) return { action: 'skip', reason: 'present' };
  if (blob.mountDeclined) return { action: 'copy', reason: 'mount-declined' };
  if (blob.mountCandidate && blob.blobMount) return { action: 'mount', reason: 'mountable' };
  return { action: 'copy', reason: 'absent' };
}
