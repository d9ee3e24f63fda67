/** An OCI image layout as a mirror destination: OciLayoutDestination behind ImageDestination. */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import type { Descriptor } from '../manifest/index.js';
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

  /**
   * `select.digest`: the manifest is written untagged, listed in index.json under its digest with
   * its `artifactType` (a referrer `mirror` carries, as `oras attach` writes one); otherwise under
   * the reference's tag.
   */
  constructor(
    readonly reference: OciLayoutReference,
    private readonly select: { digest?: Digest | undefined } = {},
  ) {
    this.layout = new OciLayoutDestination(reference.dir, select.digest ? undefined : reference.tag);
  }

  init(): Promise<void> {
    return this.layout.init();
  }

  /** What the tag names now; nothing when the layout is new or the tag (or the only image) is absent. */
  existingManifest(): Promise<RawManifest | undefined> {
    return readBack(
      new OciLayoutSource(this.reference, this.select),
      (error) => error.kind !== 'verification',
    );
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
    await this.layout.putManifest(manifest.bytes, manifest.mediaType, referrerFields(manifest.bytes));
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}

/**
 * What an index.json entry says of a manifest that refers to another (image-spec 1.1: the
 * descriptor's `artifactType` is the manifest's, else its config's media type), so that readers of
 * the layout can tell it from an image without reading it. Nothing for a manifest without `subject`.
 */
function referrerFields(bytes: Buffer): Partial<Descriptor> {
  let doc: {
    subject?: unknown;
    artifactType?: unknown;
    config?: { mediaType?: unknown };
    annotations?: unknown;
  };
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return {};
  }
  if (typeof doc !== 'object' || doc === null || !doc.subject) return {};
  const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : doc.config?.mediaType;
  return typeof artifactType === 'string' ? { artifactType } : {};
}
