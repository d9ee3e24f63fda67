/** A registry repository as a mirror destination (distribution spec push). */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import type { RegistryReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { cancelUpload, putManifest, startUpload, uploadChunked, uploadMonolithic } from '../registry/push.js';
import {
  checkManifestDigest,
  type DestinationTraits,
  type ImageDestination,
  type ManifestToWrite,
} from './destination.js';
import type { ManifestHead, RawManifest } from './source.js';

export interface RegistryDestinationOptions {
  /** Upload in PATCH chunks of this many bytes; 0 or absent: one streaming PUT per blob. */
  chunkSize?: number | undefined;
}

export class RegistryDestination implements ImageDestination {
  readonly traits: DestinationTraits = {
    indexes: true,
    schema1: true,
    layers: 'as-is',
    blobMount: true,
    crossRepoReuse: true,
    existingBlobCheck: true,
  };
  /** Sessions a declined mount opened, kept for the upload that follows it. */
  private readonly sessions = new Map<Digest, string>();

  constructor(
    readonly reference: RegistryReference,
    private readonly client: RegistryClient,
    private readonly options: RegistryDestinationOptions = {},
  ) {}

  private get location() {
    return { endpoint: this.reference.endpoint, repository: this.reference.repository };
  }

  async init(): Promise<void> {}

  async existingManifest(): Promise<RawManifest | undefined> {
    const ref = this.reference.tag ?? this.reference.digest;
    if (!ref) return undefined;
    try {
      const fetched = await this.client.getManifest(this.location, ref);
      return { bytes: fetched.bytes, contentType: fetched.contentType };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async existingManifestHead(): Promise<ManifestHead | undefined> {
    const ref = this.reference.tag ?? this.reference.digest;
    return ref ? this.client.headManifest(this.location, ref) : undefined;
  }

  /** A blob of another size than the descriptor says is not the blob the copy means to skip. */
  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    const found = await this.client.headBlob(this.location, digest, ['pull', 'push']);
    return found !== undefined && (size === undefined || Number.isNaN(found.size) || found.size === size);
  }

  async mountBlob(digest: Digest, from: RegistryReference): Promise<boolean> {
    if (from.endpoint !== this.reference.endpoint || from.repository === this.reference.repository)
      return false;
    const started = await startUpload(this.client, this.location, { digest, from: from.repository });
    if (started.kind === 'mounted') return true;
    this.sessions.set(digest, started.url);
    return false;
  }

  async putBlob(
    blob: { digest: Digest; size?: number | undefined },
    content: Readable,
    signal?: AbortSignal,
  ): Promise<void> {
    let url = this.sessions.get(blob.digest);
    this.sessions.delete(blob.digest);
    if (!url) {
      const started = await startUpload(this.client, this.location);
      if (started.kind !== 'session') return; // only a mount request can answer 'mounted'
      url = started.url;
    }
    try {
      const chunkSize = this.options.chunkSize ?? 0;
      if (chunkSize > 0)
        await uploadChunked(this.client, this.location, url, blob.digest, content, chunkSize, signal);
      else await uploadMonolithic(this.client, this.location, url, blob, content, signal);
    } catch (error) {
      await cancelUpload(this.client, this.location, url);
      throw error;
    }
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    checkManifestDigest(manifest);
    if (role === 'top' && this.reference.digest && this.reference.digest !== manifest.digest) {
      throw new VerificationError(
        `destination pins ${this.reference.digest}, but the manifest to write is ${manifest.digest}`,
        { digest: this.reference.digest },
      );
    }
    const ref = role === 'top' ? (this.reference.tag ?? manifest.digest) : manifest.digest;
    await putManifest(this.client, this.location, ref, manifest);
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {
    // Sessions of declined mounts that were never used (the blob failed elsewhere): give them back.
    await Promise.all(
      [...this.sessions.values()].map((url) => cancelUpload(this.client, this.location, url)),
    );
    this.sessions.clear();
  }
}
