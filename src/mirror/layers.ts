/**
 * How a layer is described once it changes on the way to the destination: the facts the copy
 * strategy (src/strategy/copy.ts) decides from, the media type of a converted layer, the OCI
 * equivalents of Docker's types, and the annotations a converted blob keeps.
 */
import { detectLayerFormat } from '../formats/detect.js';
import { type Descriptor, layerMediaInfo, MediaType } from '../manifest/index.js';
import type { ConvertTarget, CopyLayerFacts, LayerTarget } from '../strategy/copy.js';

export { CONVERT_TARGETS, type ConvertTarget, type LayerTarget } from '../strategy/copy.js';

/**
 * What the strategy module needs to know of a layer, from its descriptor alone. Whether it is
 * zstd:chunked already is read only when that is the target (its annotations are checked then).
 */
export function copyLayerFacts(layer: Descriptor, convert: ConvertTarget | undefined): CopyLayerFacts {
  const media = layerMediaInfo(layer.mediaType);
  return {
    digest: layer.digest,
    mediaType: layer.mediaType,
    compression: media?.compression,
    encrypted: media?.encrypted ?? false,
    zstdChunked:
      convert === 'zstd:chunked' &&
      media?.compression === 'zstd' &&
      !media.encrypted &&
      detectLayerFormat(layer).chunked?.kind === 'zstd:chunked',
    foreign:
      (layer.urls?.length ?? 0) > 0 &&
      (layer.mediaType === MediaType.dockerForeignLayerGzip || layer.mediaType.includes('nondistributable')),
  };
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
