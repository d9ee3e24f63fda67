/** A registry repository as an image source. */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import type { ByteRange, RangeConsumer } from '../ranges/index.js';
import type { RegistryReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { BlobRef, ImageSource, RawManifest } from './source.js';

export class RegistrySource implements ImageSource {
  readonly rangeSupport = 'probe' as const;

  constructor(
    readonly reference: RegistryReference,
    private readonly client: RegistryClient,
  ) {}

  private get location() {
    return { endpoint: this.reference.endpoint, repository: this.reference.repository };
  }

  async getManifest(signal?: AbortSignal): Promise<RawManifest> {
    // A digest pins the manifest even when a tag is given too (docker's rule for name:tag@digest).
    const ref = this.reference.digest ?? this.reference.tag ?? 'latest';
    const fetched = await this.client.getManifest(this.location, ref, signal);
    return { bytes: fetched.bytes, contentType: fetched.contentType };
  }

  async getManifestByDigest(digest: Digest, signal?: AbortSignal): Promise<RawManifest> {
    const fetched = await this.client.getManifest(this.location, digest, signal);
    return { bytes: fetched.bytes, contentType: fetched.contentType };
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    return (await this.client.headBlob(this.location, digest))?.size;
  }

  openBlob(blob: BlobRef, signal?: AbortSignal): Promise<Readable> {
    return this.client.openBlob(this.location, blob.digest, signal);
  }

  openBlobFrom(blob: BlobRef, offset: number, signal?: AbortSignal) {
    return this.client.openBlobFrom(this.location, blob.digest, offset, signal);
  }

  fetchRanges(
    blob: BlobRef,
    ranges: readonly ByteRange[],
    onRange: RangeConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.client.fetchRanges(this.location, blob.digest, ranges, onRange, signal);
  }

  async close(): Promise<void> {
    // The client is shared by the caller, which closes it.
  }
}
