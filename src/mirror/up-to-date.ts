/**
 * A mirror re-run decided by HEADs alone (issue 13, rate limits). Registries that meter pulls count
 * manifest GETs (Docker Hub), never HEADs: when the source's HEAD names the digest the destination
 * already holds, or, for a converting mirror, the source digest and conversion its annotations
 * record, the copy is up to date without one counted GET at the source. Anything less certain
 * (no digest in the answer, a schema1 source, one platform taken from an index, a HEAD that fails)
 * is not up to date here, and the full check that reads the manifests decides.
 *
 * What the destination's HEAD found is handed on to that check: a destination that holds nothing
 * under the reference (a first run) or another digest than an unconverted copy would write needs
 * no GET to say so (issue 15: one GET per image of a many-image first run, for nothing).
 */
import { isIndexMediaType, MediaType, parseManifest } from '../manifest/index.js';
import type { ImageDestination, ImageSource } from '../transport/index.js';
import type { ManifestHead } from '../transport/source.js';
import { annotationsOf, CONVERSION_ANNOTATION, SOURCE_ANNOTATION, type Written } from './manifests.js';

export interface HeadCheckOptions {
  all?: boolean | undefined;
  convert?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface HeadCheck {
  /** The destination already holds what the copy would write. */
  unchanged?: Pick<Written, 'digest' | 'mediaType'> | undefined;
  /**
   * What the destination's manifest HEAD answered under the copy's reference: null for nothing
   * there (404), undefined when it was not asked or did not answer.
   */
  destination?: ManifestHead | null | undefined;
}

export async function upToDateByHead(
  src: ImageSource,
  dst: ImageDestination,
  options: HeadCheckOptions,
): Promise<HeadCheck> {
  if (!src.headManifest || dst.traits.layers !== 'as-is') return {};
  const check: HeadCheck = {};
  try {
    // Both ends at once: one round trip per image instead of two, before anything else can start.
    const [source, destination] = await Promise.all([
      src.headManifest(options.signal),
      options.convert ? undefined : headDestination(dst),
    ]);
    check.destination = destination;
    const mediaType = source?.mediaType?.split(';')[0]?.trim();
    if (!source?.digest || !mediaType || mediaType.startsWith(MediaType.schema1)) return check;
    if (mediaType === MediaType.schema1Signed) return check;
    // Without --all an index's platform image is copied: the destination names another digest.
    if (isIndexMediaType(mediaType) && !options.all) return check;
    if (!options.convert) {
      const existing = dst.existingManifestHead ? destination : await digestOf(dst);
      if (existing?.digest === source.digest && existing.mediaType)
        check.unchanged = { digest: existing.digest, mediaType: existing.mediaType };
      return check;
    }
    const raw = await dst.existingManifest();
    const annotations = annotationsOf(raw?.bytes);
    if (
      !raw ||
      annotations[SOURCE_ANNOTATION] !== source.digest ||
      annotations[CONVERSION_ANNOTATION] !== options.convert
    )
      return check;
    const written = parseManifest(raw.bytes, raw.contentType, 'destination manifest');
    check.unchanged = { digest: written.digest, mediaType: written.mediaType };
    return check;
  } catch {
    return check;
  }
}

/** The destination's HEAD under the copy's reference: null for nothing there, undefined if unknown. */
async function headDestination(dst: ImageDestination): Promise<ManifestHead | null | undefined> {
  if (!dst.existingManifestHead) return undefined;
  try {
    return (await dst.existingManifestHead()) ?? null;
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
