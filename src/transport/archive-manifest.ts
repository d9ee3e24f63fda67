/**
 * The manifest a docker archive's image is read as, on its own so that the copy engine (which
 * writes what an archive destination will be read as) does not load the archive transport.
 */
import type { Digest } from '../digest/index.js';
import { MediaType } from '../manifest/index.js';

export interface ArchiveLayer {
  digest: Digest;
  size: number;
  mediaType: string;
}

/**
 * The manifest an archive image is read as. Key order follows containers/image's Go structs, so a
 * given config and layer list always give the same bytes (and digest).
 */
export function archiveManifest(config: { digest: Digest; size: number }, layers: ArchiveLayer[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, size: config.size, digest: config.digest },
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
    }),
  );
}
