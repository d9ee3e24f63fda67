/**
 * Where images come from. Each transport (registry, OCI layout, skopeo dir, docker archive)
 * implements one small interface, in the spirit of containers/image's transport split: the pull
 * and mirror code never know which one they are talking to.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import type { ByteRange, RangeConsumer } from '../ranges/index.js';
import type { ImageReference } from '../reference/index.js';

/** The partial-fetch contract lives in the leaf src/ranges; sources name its consumer type here too. */
export type { RangeConsumer };

export interface BlobRef {
  digest: Digest;
  size: number;
  mediaType?: string;
  urls?: string[] | undefined;
}

export interface RawManifest {
  bytes: Buffer;
  /** The media type the source declared for it (Content-Type, or the index entry's mediaType). */
  contentType: string | undefined;
}

/** A manifest as a HEAD describes it (registry/client.ts `headManifest`): no body, no counted pull. */
export interface ManifestHead {
  /** Docker-Content-Digest; undefined when the registry did not send it. */
  digest: Digest | undefined;
  mediaType: string | undefined;
  size: number;
}

export interface ImageSource {
  readonly reference: ImageReference;
  /**
   * Whether byte ranges can be read. 'yes' for seekable local files; 'probe' for registries,
   * which may turn out not to honour Range (a run-time fact the strategy module re-decides on);
   * 'no' for sources that are streams only.
   */
  readonly rangeSupport: 'yes' | 'probe' | 'no';
  /** The manifest the reference names (tag, digest, or the layout's only image). */
  getManifest(signal?: AbortSignal): Promise<RawManifest>;
  /**
   * The manifest the reference names, by HEAD: its digest, media type and size without its bytes.
   * Registries that meter pulls count manifest GETs, not HEADs, so a caller that only needs the
   * digest (is the copy up to date?) asks this first. Undefined when absent; only registries have it.
   */
  headManifest?(signal?: AbortSignal): Promise<ManifestHead | undefined>;
  /** A manifest by digest (an index's child). */
  getManifestByDigest(digest: Digest, signal?: AbortSignal): Promise<RawManifest>;
  /** A blob's size without reading it (schema1 manifests do not carry sizes); undefined if absent. */
  blobSize(digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** The whole blob as a stream; unverified (callers hash it). */
  openBlob(blob: BlobRef, signal?: AbortSignal): Promise<Readable>;
  /**
   * Sources worth resuming (remote ones): the blob from byte `offset`, or from `start` 0 when the
   * source would not serve that range. Local sources leave it out.
   */
  openBlobFrom?(
    blob: BlobRef,
    offset: number,
    signal?: AbortSignal,
  ): Promise<{ stream: Readable; start: number }>;
  /**
   * Byte ranges of a blob, handed to `onRange` one at a time in ascending order. Throws
   * RangesNotHonouredError (src/ranges) when the source turns out not to serve ranges.
   */
  fetchRanges(
    blob: BlobRef,
    ranges: readonly ByteRange[],
    onRange: RangeConsumer,
    signal?: AbortSignal,
  ): Promise<void>;
  close(): Promise<void>;
}
