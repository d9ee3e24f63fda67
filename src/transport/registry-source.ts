/**
 * A registry repository as an image source. registries.conf may give it several endpoints
 * (pull-sources.ts): the manifest comes from the first that serves it, mirrors first; blobs, TOC
 * reads and ranges go to that endpoint and, where it lacks a blob or fails, to the others in order
 * (a blob is named by its digest and verified by the caller, so any endpoint's bytes will do).
 * The reference, and so the name the image is stored under, stays the one the user asked for.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import {
  NetworkError,
  NotFoundError,
  RegistryBlockedError,
  SkiffError,
  StallError,
  UnauthorizedError,
} from '../errors/index.js';
import type { ByteRange, RangeConsumer } from '../ranges/index.js';
import { formatReference, type RegistryReference } from '../reference/index.js';
import type { RegistryClient, RepositoryLocation } from '../registry/client.js';
import { type PullEndpoint, pullSources } from '../registry/pull-sources.js';
import type { BlobRef, ImageSource, ManifestHead, RawManifest } from './source.js';

export class RegistrySource implements ImageSource {
  readonly rangeSupport = 'probe' as const;
  /** Where to ask, in order: the endpoint that served last comes first. */
  private endpoints: PullEndpoint[] | undefined;

  constructor(
    readonly reference: RegistryReference,
    private readonly client: RegistryClient,
  ) {}

  async getManifest(signal?: AbortSignal): Promise<RawManifest> {
    const fetched = await this.askManifest(
      (location, ref) => this.client.getManifest(location, ref, signal),
      'manifest',
    );
    return { bytes: fetched.bytes, contentType: fetched.contentType };
  }

  /** The manifest's digest, media type and size by HEAD, which metered registries do not count. */
  async headManifest(signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const digest = this.reference.digest;
    const head = await this.askManifest(
      (location, ref) => this.client.headManifest(location, ref, ['pull'], signal),
      'manifest (HEAD)',
    );
    // A reference pinned by digest names it, whether or not the registry repeats it.
    return head && digest ? { ...head, digest } : head;
  }

  async getManifestByDigest(digest: Digest, signal?: AbortSignal): Promise<RawManifest> {
    const fetched = await this.attempt(
      `manifest ${digest}`,
      (location) => this.client.getManifest(location, digest, signal),
      isSkiffError,
    );
    return { bytes: fetched.bytes, contentType: fetched.contentType };
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    const found = await this.attempt(
      `blob ${digest}`,
      async (location) => {
        const head = await this.client.headBlob(location, digest);
        if (!head) throw new NotFoundError(`blob ${digest} not found`);
        return head;
      },
      isBlobFailure,
    ).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    return found?.size;
  }

  openBlob(blob: BlobRef, signal?: AbortSignal): Promise<Readable> {
    return this.attempt(
      `blob ${blob.digest}`,
      (location) => this.client.openBlob(location, blob.digest, signal),
      isBlobFailure,
    );
  }

  openBlobFrom(blob: BlobRef, offset: number, signal?: AbortSignal) {
    return this.attempt(
      `blob ${blob.digest}`,
      (location) => this.client.openBlobFrom(location, blob.digest, offset, signal),
      isBlobFailure,
    );
  }

  fetchRanges(
    blob: BlobRef,
    ranges: readonly ByteRange[],
    onRange: RangeConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    // An endpoint that fails after some ranges: the next is asked only for the rest.
    const delivered = new Set<ByteRange>();
    const track: RangeConsumer = async (range, data) => {
      await onRange(range, data);
      delivered.add(range);
    };
    return this.attempt(
      `ranges of blob ${blob.digest}`,
      (location) =>
        this.client.fetchRanges(
          location,
          blob.digest,
          ranges.filter((r) => !delivered.has(r)),
          track,
          signal,
        ),
      isBlobFailure,
    );
  }

  async close(): Promise<void> {
    // The client is shared by the caller, which closes it.
  }

  /** The endpoints registries.conf gives; a blocked registry is refused here, before any request. */
  private candidates(): PullEndpoint[] {
    if (!this.endpoints) {
      const sources = pullSources(this.client.registries, this.reference);
      if (sources.blocked) {
        const { entry } = sources;
        throw new RegistryBlockedError(
          `registry ${entry.prefix} is blocked in ${entry.file}: skiff does not pull ${formatReference(this.reference)}`,
        );
      }
      this.endpoints = sources.endpoints;
    }
    return this.endpoints;
  }

  /**
   * Asks each endpoint in turn for the manifest the reference names. A digest pins it even when a
   * tag is given too (docker's rule for name:tag@digest).
   */
  private askManifest<T>(
    ask: (location: RepositoryLocation, ref: string) => Promise<T>,
    what: string,
  ): Promise<T> {
    // Which endpoint served is said where registries.conf sent the pull elsewhere than the
    // reference names (after a failure it is said anyway).
    const endpoints = this.candidates();
    const rewritten = endpoints.length > 1 || endpoints[0]!.reference !== this.reference;
    return this.attempt(
      what,
      (location, endpoint) => ask(location, endpoint.reference.digest ?? endpoint.reference.tag ?? 'latest'),
      isSkiffError,
      rewritten,
    );
  }

  /**
   * Runs `operation` against each endpoint in turn until one succeeds; every failure that moves on
   * is told to the client's listener, and so is the endpoint that then served (or, with
   * `sayServed`, whichever served). The endpoint that succeeded is asked first from then on.
   */
  private async attempt<T>(
    what: string,
    operation: (location: RepositoryLocation, endpoint: PullEndpoint) => Promise<T>,
    movesOn: (error: unknown) => boolean,
    sayServed = false,
  ): Promise<T> {
    const endpoints = this.candidates();
    for (const [i, endpoint] of endpoints.entries()) {
      try {
        const result = await operation(
          { endpoint: endpoint.reference.endpoint, repository: endpoint.reference.repository },
          endpoint,
        );
        if (i > 0) this.endpoints = [endpoint, ...endpoints.filter((e) => e !== endpoint)];
        if (i > 0 || sayServed)
          this.client.onSource?.({
            kind: 'used',
            image: formatReference(this.reference),
            endpoint: endpointName(endpoint),
            mirror: endpoint.mirror,
            what,
          });
        return result;
      } catch (error) {
        const next = endpoints[i + 1];
        if (!next || !movesOn(error)) throw error;
        this.client.onSource?.({
          kind: 'failed',
          image: formatReference(this.reference),
          endpoint: endpointName(endpoint),
          mirror: endpoint.mirror,
          what,
          error: (error as Error).message,
          next: endpointName(next),
        });
      }
    }
    throw new Error('unreachable: no endpoint to try');
  }
}

function endpointName(endpoint: PullEndpoint): string {
  return `${endpoint.reference.registry}/${endpoint.reference.repository}`;
}

/** A manifest is looked for at the next endpoint after any failure skiff can name (containers/image). */
function isSkiffError(error: unknown): boolean {
  return error instanceof SkiffError && !(error instanceof RegistryBlockedError);
}

/**
 * A blob is asked of the next endpoint when this one lacks it, refuses it or cannot be reached;
 * not when it served bytes that fail a check, nor for a run-time fact such as ignored ranges.
 */
function isBlobFailure(error: unknown): boolean {
  return (
    (error instanceof NotFoundError || error instanceof UnauthorizedError || error instanceof NetworkError) &&
    !(error instanceof StallError)
  );
}
