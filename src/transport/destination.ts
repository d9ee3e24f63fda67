/**
 * Where `mirror` writes images: the destination side of the transport split (source.ts is the
 * other). The copy engine never knows which transport it is writing to; what differs between them
 * is stated in `traits`.
 */
import type { Readable } from 'node:stream';
import { type Digest, sha256 } from '../digest/index.js';
import { SkiffError, VerificationError } from '../errors/index.js';
import { parseManifest } from '../manifest/index.js';
import type { ImageReference, RegistryReference } from '../reference/index.js';
import type { ImageSource, ManifestHead, RawManifest } from './source.js';

export interface DestinationTraits {
  /** Can hold an index with its per-platform manifests (docker-archive cannot). */
  indexes: boolean;
  /** Can hold a schema1 manifest as it is (an OCI layout cannot). */
  schema1: boolean;
  /**
   * 'as-is': blobs keep their bytes and digests. 'uncompressed': layers must be plain tars named by
   * their DiffID and the manifest is not stored, only rebuilt from config and layers (docker-archive).
   */
  layers: 'as-is' | 'uncompressed';
  /** Links a blob another repository of the same registry holds, without moving its bytes. */
  blobMount: boolean;
  /** Blobs are shared across the names it holds (a registry's repositories, a layout's images). */
  crossRepoReuse: boolean;
  /** Can tell whether it holds a blob before one is sent (hasBlob answers without guessing). */
  existingBlobCheck: boolean;
}

export type { LayerCommitCapabilities } from '../strategy/index.js';

export interface ManifestToWrite {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/**
 * Refuses a manifest whose bytes are not what its digest names: a destination stores (and a registry
 * tags) the bytes, while the copy goes on with the digest, so the two must agree before anything
 * is written.
 */
export function checkManifestDigest(manifest: ManifestToWrite): void {
  let actual: Digest;
  try {
    actual = parseManifest(manifest.bytes, manifest.mediaType).digest;
  } catch {
    actual = sha256(manifest.bytes);
  }
  if (actual !== manifest.digest)
    throw new VerificationError(`manifest ${manifest.digest} does not match its bytes (they are ${actual})`, {
      digest: manifest.digest,
    });
}

/**
 * What a local destination's reference names now, read back through that transport's own source:
 * undefined when nothing is there yet (`absent` says which failures mean so for the transport),
 * every other failure thrown, so a damaged destination is said rather than overwritten.
 */
export async function readBack(
  source: ImageSource,
  absent: (error: SkiffError) => boolean,
): Promise<RawManifest | undefined> {
  try {
    return await source.getManifest();
  } catch (error) {
    if (error instanceof SkiffError && absent(error)) return undefined;
    throw error;
  } finally {
    await source.close();
  }
}

export interface ImageDestination {
  readonly reference: ImageReference;
  readonly traits: DestinationTraits;
  /** Prepares the destination (creates directories); writes nothing visible. */
  init(): Promise<void>;
  /** The manifest the destination reference names now, if any: the up-to-date check reads it. */
  existingManifest(): Promise<RawManifest | undefined>;
  /** The manifest the reference names now, by HEAD (registries): its digest without a counted GET. */
  existingManifestHead?(): Promise<ManifestHead | undefined>;
  hasBlob(digest: Digest, size?: number): Promise<boolean>;
  /** Cross-repository mount within one registry; false when it did not happen (upload instead). */
  mountBlob?(digest: Digest, from: RegistryReference): Promise<boolean>;
  /**
   * Stores a blob read from `content`. The blob counts as stored only if the stream ends without
   * error; every implementation also checks the bytes against `digest` before keeping them.
   */
  putBlob(
    blob: { digest: Digest; size?: number | undefined },
    content: Readable,
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * 'child': an index's entry, by digest only. 'top': under the reference's tag (or digest).
   * Refuses bytes that do not hash to `manifest.digest` (checkManifestDigest), writing nothing.
   */
  putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void>;
  /** Makes the written image visible where that is a separate step (docker-archive writes its file). */
  commit(): Promise<void>;
  /** Releases resources and discards anything not committed. */
  close(): Promise<void>;
}
