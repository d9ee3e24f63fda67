// An in-memory transport for tests of the copy engine without a registry (go-containerregistry's
// and oras-go's memory stores are the models): one MemoryRepository holds manifests and blobs;
// MemorySource reads it and MemoryDestination writes it, both behind the same interfaces as the
// real transports. Switches say whether ranges are served (and which), whether blob mounts
// succeed, and where faults are injected; counters say what crossed.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { type Digest, hexOf, sha256 } from '../../src/digest/index.js';
import { NotFoundError, VerificationError } from '../../src/errors/index.js';
import { type ByteRange, RangesNotHonouredError } from '../../src/ranges/index.js';
import { parseReference, type RegistryReference } from '../../src/reference/index.js';
import { checkManifestDigest } from '../../src/transport/destination.js';
import type {
  BlobRef,
  DestinationTraits,
  ImageDestination,
  ImageSource,
  ManifestToWrite,
  RangeConsumer,
  RawManifest,
} from '../../src/transport/index.js';

/** What the memory source answers to a range request. */
export type RangeAnswer = 'serve' | 'ignore' | 'refuse-multi';

export interface MemorySwitches {
  /** How range requests are answered (default: all served). 'ignore' is a 200 with the whole blob. */
  ranges?: (ranges: readonly ByteRange[]) => RangeAnswer;
  /** Whether a cross-repository mount links the blob (default true); false declines it. */
  mount?: boolean;
  /** Called before every operation; throw from it to inject a fault. */
  fault?: (operation: 'manifest' | 'blob' | 'ranges' | 'put-blob' | 'put-manifest', digest?: Digest) => void;
}

/** One registry's worth of content, shared by every repository name (like a registry's blob store). */
export class MemoryRegistry {
  readonly blobs = new Map<Digest, Buffer>();
  /** By `repository:tag` and by digest. */
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  /** Which repositories hold which blobs (a mount needs the blob in the repository it names). */
  readonly repositories = new Map<string, Set<Digest>>();
  readonly counts = { blobReads: 0, rangeRequests: 0, blobWrites: 0, mounts: 0, mountsDeclined: 0 };

  constructor(
    readonly host: string,
    readonly switches: MemorySwitches = {},
  ) {}

  /** Loads every image of an OCI layout under `repository`, tagged as in the layout. */
  loadLayout(dir: string, repository: string): void {
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: Digest; mediaType: string; annotations?: Record<string, string> }>;
    };
    const held = this.repo(repository);
    for (const file of fs.readdirSync(path.join(dir, 'blobs', 'sha256'))) {
      const digest = `sha256:${file}` as Digest;
      this.blobs.set(digest, fs.readFileSync(path.join(dir, 'blobs', 'sha256', file)));
      held.add(digest);
    }
    for (const entry of index.manifests) {
      const tag = entry.annotations?.['org.opencontainers.image.ref.name'] ?? 'latest';
      const bytes = this.blobs.get(entry.digest)!;
      this.manifests.set(`${repository}:${tag}`, { bytes, mediaType: entry.mediaType });
    }
  }

  reference(repository: string, tag = 'latest'): RegistryReference {
    return parseReference(`docker://${this.host}/${repository}:${tag}`) as RegistryReference;
  }

  repo(repository: string): Set<Digest> {
    let held = this.repositories.get(repository);
    if (!held) {
      held = new Set();
      this.repositories.set(repository, held);
    }
    return held;
  }

  manifestByDigest(digest: Digest): { bytes: Buffer; mediaType: string } | undefined {
    const blob = this.blobs.get(digest);
    if (blob) return { bytes: blob, mediaType: '' };
    return [...this.manifests.values()].find((m) => sha256(m.bytes) === digest);
  }
}

export class MemorySource implements ImageSource {
  readonly rangeSupport = 'probe' as const;

  constructor(
    readonly registry: MemoryRegistry,
    readonly reference: RegistryReference,
  ) {}

  async getManifest(): Promise<RawManifest> {
    this.registry.switches.fault?.('manifest');
    const ref = this.reference.digest ?? `${this.reference.repository}:${this.reference.tag ?? 'latest'}`;
    const found = ref.startsWith('sha256:')
      ? this.registry.manifestByDigest(ref as Digest)
      : this.registry.manifests.get(ref);
    if (!found) throw new NotFoundError(`manifest ${ref} not found in memory registry`);
    return { bytes: found.bytes, contentType: found.mediaType || undefined };
  }

  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    this.registry.switches.fault?.('manifest', digest);
    const found = this.registry.manifestByDigest(digest);
    if (!found) throw new NotFoundError(`manifest ${digest} not found in memory registry`, { digest });
    return { bytes: found.bytes, contentType: found.mediaType || undefined };
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    return this.registry.blobs.get(digest)?.length;
  }

  async openBlob(blob: BlobRef): Promise<Readable> {
    this.registry.switches.fault?.('blob', blob.digest);
    this.registry.counts.blobReads++;
    return Readable.from([this.bytes(blob.digest)]);
  }

  async fetchRanges(blob: BlobRef, ranges: readonly ByteRange[], onRange: RangeConsumer): Promise<void> {
    this.registry.switches.fault?.('ranges', blob.digest);
    this.registry.counts.rangeRequests++;
    const answer = this.registry.switches.ranges?.(ranges) ?? 'serve';
    if (answer === 'ignore')
      throw new RangesNotHonouredError(
        'ignored',
        `memory registry answered ${ranges.length} range(s) with the whole blob`,
      );
    if (answer === 'refuse-multi' && ranges.length > 1)
      throw new RangesNotHonouredError('multi-range-refused', 'memory registry serves one range per request');
    const bytes = this.bytes(blob.digest);
    // A short part would pass a truncated read off as the range: refuse, as every real source does.
    const beyond = ranges.find((range) => range.end > bytes.length);
    if (beyond)
      throw new VerificationError(
        `blob ${blob.digest}: range ${beyond.start}-${beyond.end} is beyond its ${bytes.length} bytes`,
        { digest: blob.digest },
      );
    for (const range of ranges) await onRange(range, Readable.from([bytes.subarray(range.start, range.end)]));
  }

  private bytes(digest: Digest): Buffer {
    const bytes = this.registry.blobs.get(digest);
    if (!bytes) throw new NotFoundError(`blob ${digest} not found in memory registry`, { digest });
    return bytes;
  }

  async close(): Promise<void> {}
}

export class MemoryDestination implements ImageDestination {
  readonly traits: DestinationTraits = {
    indexes: true,
    schema1: true,
    layers: 'as-is',
    blobMount: true,
    crossRepoReuse: true,
    existingBlobCheck: true,
  };

  constructor(
    readonly registry: MemoryRegistry,
    readonly reference: RegistryReference,
  ) {}

  async init(): Promise<void> {}

  async existingManifest(): Promise<RawManifest | undefined> {
    const found = this.registry.manifests.get(
      `${this.reference.repository}:${this.reference.tag ?? 'latest'}`,
    );
    return found && { bytes: found.bytes, contentType: found.mediaType };
  }

  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    const held = this.registry.repo(this.reference.repository).has(digest);
    return held && (size === undefined || this.registry.blobs.get(digest)?.length === size);
  }

  async mountBlob(digest: Digest, from: RegistryReference): Promise<boolean> {
    const possible =
      from.endpoint === this.reference.endpoint &&
      this.registry.repositories.get(from.repository)?.has(digest);
    if (!possible || this.registry.switches.mount === false) {
      this.registry.counts.mountsDeclined++;
      return false;
    }
    this.registry.counts.mounts++;
    this.registry.repo(this.reference.repository).add(digest);
    return true;
  }

  async putBlob(blob: { digest: Digest; size?: number | undefined }, content: Readable): Promise<void> {
    this.registry.switches.fault?.('put-blob', blob.digest);
    const parts: Buffer[] = [];
    for await (const part of content) parts.push(part as Buffer);
    const bytes = Buffer.concat(parts);
    if (sha256(bytes) !== blob.digest)
      throw new VerificationError(`blob ${hexOf(blob.digest).slice(0, 12)} does not match its digest`);
    this.registry.counts.blobWrites++;
    this.registry.blobs.set(blob.digest, bytes);
    this.registry.repo(this.reference.repository).add(blob.digest);
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    this.registry.switches.fault?.('put-manifest', manifest.digest);
    // Bytes and digest must agree before a tag is pointed at them, as for every real destination.
    checkManifestDigest(manifest);
    const entry = { bytes: manifest.bytes, mediaType: manifest.mediaType };
    this.registry.blobs.set(manifest.digest, manifest.bytes);
    if (role === 'top')
      this.registry.manifests.set(
        `${this.reference.repository}:${this.reference.tag ?? manifest.digest}`,
        entry,
      );
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}
