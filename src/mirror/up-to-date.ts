/**
 * A mirror re-run decided by HEADs alone (issue 13, rate limits). Registries that meter pulls count
 * manifest GETs (Docker Hub), never HEADs: when the source's HEAD names the digest the destination
 * already holds, or, for a converting mirror, the source digest and conversion its annotations
 * record, the copy is up to date without one counted GET at the source. Anything less certain
 * (no digest in the answer, a schema1 source, one platform taken from an index, a HEAD that fails)
 * returns undefined, and the full check that reads the manifests decides.
 */
import { isIndexMediaType, MediaType, parseManifest } from '../manifest/index.js';
import type { ImageDestination, ImageSource } from '../transport/index.js';
import { annotationsOf, CONVERSION_ANNOTATION, SOURCE_ANNOTATION, type Written } from './manifests.js';

export interface HeadCheckOptions {
  all?: boolean | undefined;
  convert?: string | undefined;
  signal?: AbortSignal | undefined;
}

export async function upToDateByHead(
  src: ImageSource,
  dst: ImageDestination,
  options: HeadCheckOptions,
): Promise<Pick<Written, 'digest' | 'mediaType'> | undefined> {
  if (!src.headManifest || dst.traits.layers !== 'as-is') return undefined;
  try {
    const source = await src.headManifest(options.signal);
    const mediaType = source?.mediaType?.split(';')[0]?.trim();
    if (!source?.digest || !mediaType || mediaType.startsWith(MediaType.schema1)) return undefined;
    if (mediaType === MediaType.schema1Signed) return undefined;
    // Without --all an index's platform image is copied: the destination names another digest.
    if (isIndexMediaType(mediaType) && !options.all) return undefined;
    if (!options.convert) {
      const existing = dst.existingManifestHead ? await dst.existingManifestHead() : await digestOf(dst);
      return existing?.digest === source.digest && existing.mediaType
        ? { digest: existing.digest, mediaType: existing.mediaType }
        : undefined;
    }
    const raw = await dst.existingManifest();
    const annotations = annotationsOf(raw?.bytes);
    if (
      !raw ||
      annotations[SOURCE_ANNOTATION] !== source.digest ||
      annotations[CONVERSION_ANNOTATION] !== options.convert
    )
      return undefined;
    const written = parseManifest(raw.bytes, raw.contentType, 'destination manifest');
    return { digest: written.digest, mediaType: written.mediaType };
  } catch {
    return undefined;
  }
}

async function digestOf(dst: ImageDestination) {
  const raw = await dst.existingManifest();
  if (!raw) return undefined;
  const doc = parseManifest(raw.bytes, raw.contentType, 'destination manifest');
  return { digest: doc.digest, mediaType: doc.mediaType };
}
