/**
 * What happens to each layer on the way to the destination, decided from the descriptor alone
 * (media type and annotations, both covered by the manifest digest), before anything is fetched:
 *
 * - `copy`: the blob's bytes as they are (digest preserved). Always the case without --convert,
 *   and for layers that are already in the wanted form, encrypted, or not layers at all.
 * - `convert`: decompress, check the tar against the config's DiffID, recompress (or keep as a
 *   plain tar for docker-archive). The digest changes, so the manifest is rewritten.
 * - `foreign`: a non-distributable layer that lives at its URLs: referenced, never transferred.
 */
import { UsageError } from '../errors/index.js';
import { detectLayerFormat } from '../formats/detect.js';
import { type Compression, type Descriptor, layerMediaInfo, MediaType } from '../manifest/index.js';

export const CONVERT_TARGETS = ['gzip', 'zstd', 'zstd:chunked'] as const;
export type ConvertTarget = (typeof CONVERT_TARGETS)[number];
/** The form a layer must take at the destination: a --convert target, or `tar` (docker-archive). */
export type LayerTarget = ConvertTarget | 'tar';

export type LayerAction =
  | { kind: 'copy'; note?: string }
  | { kind: 'convert'; to: LayerTarget; from: Compression }
  | { kind: 'foreign' };

export function layerAction(layer: Descriptor, target: LayerTarget | undefined): LayerAction {
  const media = layerMediaInfo(layer.mediaType);
  if (isForeign(layer)) {
    if (target === 'tar') throw archiveRefuses(layer, 'a non-distributable layer served from its URLs');
    return { kind: 'foreign' };
  }
  if (!media) {
    if (target === 'tar') throw archiveRefuses(layer, `media type ${layer.mediaType} is not a layer`);
    return target
      ? { kind: 'copy', note: `${layer.mediaType} copied as it is (not a layer)` }
      : { kind: 'copy' };
  }
  if (!target) return { kind: 'copy' };
  if (media.encrypted) {
    // The HMAC and keys cover the encrypted bytes: converting would need the key and break them.
    if (target === 'tar') throw archiveRefuses(layer, 'the layer is encrypted');
    return { kind: 'copy', note: 'encrypted layers copied as they are, not converted' };
  }
  if (alreadyIn(layer, media.compression, target)) return { kind: 'copy' };
  return { kind: 'convert', to: target, from: media.compression };
}

function alreadyIn(layer: Descriptor, compression: Compression, target: LayerTarget): boolean {
  switch (target) {
    case 'tar':
      return compression === 'none';
    case 'gzip':
    case 'zstd':
      return compression === target;
    case 'zstd:chunked':
      return compression === 'zstd' && detectLayerFormat(layer).chunked?.kind === 'zstd:chunked';
  }
}

function isForeign(layer: Descriptor): boolean {
  return (
    (layer.urls?.length ?? 0) > 0 &&
    (layer.mediaType === MediaType.dockerForeignLayerGzip || layer.mediaType.includes('nondistributable'))
  );
}

function archiveRefuses(layer: Descriptor, why: string): UsageError {
  return new UsageError(
    `a docker archive holds plain tar layers; layer ${layer.digest} cannot go in: ${why}`,
    {
      digest: layer.digest,
    },
  );
}

/** The media type of a converted layer. */
export function targetMediaType(target: LayerTarget): string {
  if (target === 'tar') return MediaType.dockerLayer;
  return target === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerZstd;
}

const OCI_EQUIVALENT: Record<string, string> = {
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  [MediaType.dockerLayer]: MediaType.ociLayer,
  [MediaType.dockerForeignLayerGzip]: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  [MediaType.dockerConfig]: MediaType.ociConfig,
  [MediaType.dockerManifest]: MediaType.ociManifest,
  [MediaType.dockerList]: MediaType.ociIndex,
};

/** A rewritten image is written as OCI (Docker schema2 has no zstd): Docker types map across. */
export function ociMediaType(mediaType: string): string {
  return OCI_EQUIVALENT[mediaType] ?? mediaType;
}

/** Annotations that describe the old encoding and would lie about a converted blob. */
const FORMAT_ANNOTATION =
  /^(io\.github\.containers\.zstd-chunked\.|io\.containers\.zstd-chunked\.|containerd\.io\/snapshot\/stargz\/|io\.containers\.estargz\.)/;

export function keptAnnotations(annotations: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(annotations ?? {}).filter(([key]) => !FORMAT_ANNOTATION.test(key)),
  );
}
