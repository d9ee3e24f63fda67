/** Fetching an index's child manifest from any source, verified against the digest that names it. */
import { VerificationError } from '../errors/index.js';
import { type Descriptor, type ManifestDocument, parseManifest } from '../manifest/index.js';
import type { ImageSource } from './source.js';

export async function fetchManifestByDigest(
  source: ImageSource,
  descriptor: Descriptor,
  signal?: AbortSignal,
): Promise<ManifestDocument> {
  const raw = await source.getManifestByDigest(descriptor.digest, signal);
  const doc = parseManifest(
    raw.bytes,
    descriptor.mediaType ?? raw.contentType,
    `manifest ${descriptor.digest}`,
  );
  if (doc.digest !== descriptor.digest) {
    throw new VerificationError(
      `manifest digest mismatch: the index names ${descriptor.digest}, the source served ${doc.digest}`,
      { digest: descriptor.digest },
    );
  }
  return doc;
}
