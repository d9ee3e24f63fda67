/** An OCI image layout as a mirror destination: OciLayoutDestination behind ImageDestination. */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import type { OciLayoutReference } from '../reference/index.js';
import {
  checkManifestDigest,
  type DestinationTraits,
  type ImageDestination,
  type ManifestToWrite,
  readBack,
} from './destination.js';
import { OciLayoutSource } from './oci-layout.js';
import { OciLayoutDestination } from './oci-layout-dest.js';
import type { RawManifest } from './source.js';

export class OciDestination implements ImageDestination {
  readonly traits: DestinationTraits = {
    indexes: true,
    schema1: false,
    layers: 'as-is',
    blobMount: false,
    crossRepoReuse: true,
    existingBlobCheck: true,
  };
  private readonly layout: OciLayoutDestination;

  constructor(readonly reference: OciLayoutReference) {
    this.layout = new OciLayoutDestination(reference.dir, reference.tag);
  }

  init(): Promise<void> {
    return this.layout.init();
  }

  /** What the tag names now; nothing when the layout is new or the tag (or the only image) is absent. */
  existingManifest(): Promise<RawManifest | undefined> {
    return readBack(new OciLayoutSource(this.reference), (error) => error.kind !== 'verification');
  }

  hasBlob(digest: Digest, size?: number): Promise<boolean> {
    return this.layout.hasBlob(digest, size);
  }

  putBlob(blob: { digest: Digest; size?: number | undefined }, content: Readable): Promise<void> {
    return this.layout.putBlob(blob.digest, content, blob.size);
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    checkManifestDigest(manifest);
    if (role === 'child') {
      // An index's children are plain blobs; only the top manifest gets an index.json entry.
      if (!(await this.layout.hasBlob(manifest.digest, manifest.bytes.length)))
        await this.layout.putBlob(manifest.digest, manifest.bytes);
      return;
    }
    await this.layout.putManifest(manifest.bytes, manifest.mediaType);
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}
