/**
 * The store as a destination by reference (`store:NAME`, `store:[ROOT]NAME`): what
 * `openDestination` returns for a store reference, so `mirror … store:NAME` and any other copy
 * can name the store like every other transport.
 *
 * The store commits layers, not blobs (store-destination.ts), so there are two ways in:
 * - `copyFrom`: the engine's way (image-copy.ts hands every copy into the store here). The source
 *   goes straight to copyToStore, so the store reuses what it holds by DiffID and by file and chunk
 *   digest and pulls chunked layers partially, exactly as `skiff pull` does.
 * - the blob-level ImageDestination methods, for a caller that writes blobs and manifests itself
 *   (the conformance suite, test/harness/transport-conformance.ts): they are staged, verified, in
 *   a private OCI layout, and `commit` copies that layout into the store the same way. Nothing is
 *   visible in the store before `commit`, and `close` removes the staging.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import { UsageError } from '../errors/index.js';
import { namesDigest } from '../images/index.js';
import type { PullReport } from '../pull/report.js';
import {
  formatReference,
  type ImageReference,
  parseStoredName,
  type StoreReference,
  storeName,
} from '../reference/index.js';
import { defaultStorePath, Store } from '../store/index.js';
import {
  checkManifestDigest,
  type DestinationTraits,
  type ImageDestination,
  type ManifestToWrite,
  readBack,
} from '../transport/destination.js';
import { OciLayoutSource } from '../transport/oci-layout.js';
import { OciLayoutDestination } from '../transport/oci-layout-dest.js';
import type { ImageSource, ManifestHead, RawManifest } from '../transport/source.js';
import { StoreSource } from '../transport/store-source.js';
import { copyToStore, type StoreCopyOptions } from './store-copy.js';
import { StoreDestination } from './store-destination.js';

const STAGED_TAG = 'staged';

export class StoreImageDestination implements ImageDestination {
  /**
   * The store keeps images (one per name and platform), not indexes, and converts schema1 itself
   * (DiffIDs computed): an index or a schema1 manifest is not written to it as it is.
   */
  readonly traits: DestinationTraits = {
    indexes: false,
    schema1: false,
    layers: 'as-is',
    blobMount: false,
    crossRepoReuse: false,
    existingBlobCheck: true,
  };
  /** The reference the image is named by in the store (NAME normalised as a pull's reference). */
  readonly name: ImageReference;
  private staging: { dir: string; layout: OciLayoutDestination; top: boolean } | undefined;

  constructor(readonly reference: StoreReference) {
    this.name = storedName(reference);
  }

  get root(): string {
    return this.reference.root ?? defaultStorePath();
  }

  /** Copies `source` into the store under this name (resolve, plan, fetch, verify, commit). */
  async copyFrom(source: ImageSource, options: Omit<StoreCopyOptions, 'reference'>): Promise<PullReport> {
    const copy = (store: Store) =>
      copyToStore(source, new StoreDestination(store, this.name), {
        ...options,
        reference: formatReference(source.reference),
      });
    if (!options.dryRun) return copy(await Store.open(this.root));
    // A dry run creates nothing: where no store is yet, it plans against an empty one of its own.
    const existing = await Store.find(this.root);
    if (existing) return copy(existing);
    const empty = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-dry-run-'));
    try {
      return await copy(await Store.open(empty));
    } finally {
      await fsp.rm(empty, { recursive: true, force: true });
    }
  }

  /** The manifest digests the name points at now, one per platform (none without a store). */
  async namedManifests(): Promise<Digest[]> {
    const store = await Store.find(this.root);
    if (!store) return [];
    return (await store.readNames(storeName(this.name))).map((n) => n.manifestDigest);
  }

  /**
   * The source manifest the name was pulled from, as a HEAD would name it: what lets a re-run
   * be proven up to date by the source's HEAD alone (src/mirror/up-to-date.ts), with no counted
   * GET, even where the store serves another manifest (compressed layers come out as tars).
   * Only for a name of one platform: of several, which one a HEAD means is not known here.
   */
  async existingManifestHead(): Promise<ManifestHead | undefined> {
    const store = await Store.find(this.root);
    const records = store ? await store.readNames(storeName(this.name)) : [];
    const record = records.length === 1 ? records[0]! : undefined;
    if (!store || !record?.manifestDigest) return undefined;
    const kept = store.hasImage(record.configDigest)
      ? (await store.readImageManifests(record.configDigest)).find(
          (m) => m.record.digest === record.manifestDigest,
        )
      : undefined;
    return (
      kept && { digest: record.manifestDigest, mediaType: kept.record.mediaType, size: kept.bytes.length }
    );
  }

  /** The media type of a manifest the store keeps for an image, if it keeps that manifest. */
  async manifestMediaType(configDigest: Digest | undefined, manifest: Digest): Promise<string | undefined> {
    if (!configDigest) return undefined;
    const store = await Store.find(this.root);
    if (!store?.hasImage(configDigest)) return undefined;
    const kept = await store.readImageManifests(configDigest);
    return kept.find((m) => m.record.digest === manifest)?.record.mediaType;
  }

  async init(): Promise<void> {
    if (this.staging) return;
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-store-staging-'));
    const layout = new OciLayoutDestination(dir, STAGED_TAG);
    await layout.init();
    this.staging = { dir, layout, top: false };
  }

  /** No store, or no such name: nothing there yet. A damaged store is said, not hidden. */
  existingManifest(): Promise<RawManifest | undefined> {
    return readBack(new StoreSource(this.reference), (error) => error.kind !== 'verification');
  }

  hasBlob(digest: Digest, size?: number): Promise<boolean> {
    return this.staged().layout.hasBlob(digest, size);
  }

  putBlob(blob: { digest: Digest; size?: number | undefined }, content: Readable): Promise<void> {
    return this.staged().layout.putBlob(blob.digest, content, blob.size);
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    checkManifestDigest(manifest);
    if (role === 'child')
      throw new UsageError(
        `${formatReference(this.reference)}: the store keeps single images; choose one with --platform`,
        { digest: manifest.digest },
      );
    const staging = this.staged();
    await staging.layout.putManifest(manifest.bytes, manifest.mediaType);
    staging.top = true;
  }

  /** Copies what was staged into the store: the moment the image becomes visible there. */
  async commit(): Promise<void> {
    const staging = this.staged();
    if (!staging.top) throw new UsageError(`${formatReference(this.reference)}: nothing to commit`);
    const staged = new OciLayoutSource({ transport: 'oci', dir: staging.dir, tag: STAGED_TAG });
    try {
      await this.copyFrom(staged, {});
    } finally {
      await staged.close();
    }
  }

  async close(): Promise<void> {
    if (this.staging) await fsp.rm(this.staging.dir, { recursive: true, force: true });
    this.staging = undefined;
  }

  private staged() {
    if (!this.staging) throw new Error(`${formatReference(this.reference)}: init() was not called`);
    return this.staging;
  }
}

/**
 * The name a copy into the store records: `store:NAME[:TAG]` names the image as a pull of NAME
 * would (`app:1` is docker.io/library/app:1), so `store:app:1` finds it again. A digest names
 * content, not a place to write to.
 */
function storedName(reference: StoreReference): ImageReference {
  const refuse = () =>
    new UsageError(
      `${formatReference(reference)}: a copy into the store needs a name to record, NAME[:TAG], not a digest`,
    );
  if (namesDigest(reference.image)) throw refuse();
  const name = parseStoredName(reference.image);
  if (name.transport === 'docker' && name.digest && !name.tag) throw refuse();
  return name;
}
