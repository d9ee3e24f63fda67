/**
 * The store as a destination of the copy engine. Unlike a blob destination (registry, oci:, dir:,
 * docker-archive:) it commits layers, not blobs: each layer is unpacked into file contents and
 * committed under a DiffID it has proven, which is what lets it reuse what it holds by DiffID and
 * by file and chunk digest, and commit a layer fetched partially from a chunked source. It says so
 * in its capabilities; the strategy module plans from them, and this class carries out a layer's
 * decision (reuse, partial, full) when the engine asks, throwing RuntimeFactError when the run
 * reveals a fact the engine must take back to the strategy module.
 *
 * Nothing is visible until `commit`: layers are staged in the session, then committed in
 * dependency order (objects, layers, blob records, image, name).
 */
import { type Digest, sha256 } from '../digest/index.js';
import type { DecryptionKey } from '../formats/encryption/keys.js';
import { formatPlatform } from '../manifest/index.js';
import { schema1ToOciConfig } from '../manifest/schema1.js';
import { type ImageReference, storeName } from '../reference/index.js';
import type {
  ImageRecord,
  ManifestRecord,
  ResumeSession,
  StagedLayer,
  Store,
  StoreSession,
} from '../store/index.js';
import {
  type ImageFacts,
  type LayerCommitCapabilities,
  type LayerDecision,
  STORE_CAPABILITIES,
} from '../strategy/index.js';
import type { ImageSource } from '../transport/index.js';
import type { ResolvedImage } from './resolve.js';
import type { LayerContext } from './store/context.js';
import { type GatheredLayer, gatherLayerFacts, releaseChunked, takeForFullPull } from './store/facts.js';
import { pullFull, tarSizeBound } from './store/layer-full.js';
import { pullPartial } from './store/partial.js';

/** What one attempt at a layer needs from the engine: the source, the keys, and its meters. */
export interface LayerRun {
  source: ImageSource;
  keys: DecryptionKey[];
  signal: AbortSignal;
  maxLayerSize: number;
  /** Bytes received from the source. */
  fetched(bytes: number): void;
  /** Bytes a resumed layer did not fetch again. */
  resumed(bytes: number): void;
  warn(message: string): void;
}

/** A layer's result: staged for commit, or already held (reuse). */
export interface LayerOutcome {
  decision: LayerDecision;
  staged?: StagedLayer | undefined;
  /** The DiffID the layer is committed (or reused) under. */
  diffID: Digest;
  bytesFetched: number;
  /** Bytes held from an interrupted pull, verified again, not fetched. */
  bytesResumed: number;
}

export class StoreDestination {
  /** What the store can do with a layer: everything a partial, proven, reusing pull needs. */
  readonly capabilities: LayerCommitCapabilities = STORE_CAPABILITIES;
  private session: StoreSession | undefined;
  private resumeSession: ResumeSession | undefined;
  private gathered: GatheredLayer[] = [];

  /** `reference` names the image in the store (its name and platform). */
  constructor(
    readonly store: Store,
    readonly reference: ImageReference,
  ) {}

  /**
   * Starts the store session (not for a dry run). It starts before the store is consulted, so gc
   * cannot remove what the plan reuses. Only what is costly to fetch again is kept for a later
   * pull: a remote source's bytes.
   */
  async begin(source: ImageSource, options: { dryRun: boolean }): Promise<void> {
    if (options.dryRun) return;
    this.session = await this.store.beginSession();
    if (source.openBlobFrom) this.resumeSession = this.store.resume.forSession(this.session.id);
  }

  get writing(): boolean {
    return this.session !== undefined;
  }

  /** The strategy module's facts for every layer: what the store holds, and TOCs of partial candidates. */
  async layerFacts(
    resolved: ResolvedImage,
    image: ImageFacts,
    source: ImageSource,
    signal: AbortSignal,
    warn: (message: string) => void,
  ): Promise<GatheredLayer[]> {
    this.gathered = await gatherLayerFacts(
      resolved,
      image,
      this.store,
      source,
      signal,
      this.resumeSession && { session: this.resumeSession, warn },
    );
    return this.gathered;
  }

  /**
   * Carries out one decision for one layer: nothing for `reuse`, else the layer staged (not yet
   * visible). Throws RuntimeFactError when the run reveals a fact for the strategy module.
   */
  async commitLayer(
    decision: LayerDecision,
    g: GatheredLayer,
    run: LayerRun,
  ): Promise<StagedLayer | undefined> {
    if (decision.method === 'reuse') return undefined;
    const ctx = this.layerContext(g, run, decision);
    const staged = await (decision.method === 'partial'
      ? pullPartial(ctx, g.chunked!, decision)
      : pullFull(ctx));
    releaseChunked(g);
    return staged;
  }

  private layerContext(g: GatheredLayer, run: LayerRun, decision: LayerDecision): LayerContext {
    // A full pull's bound and hints are taken now, and what it does not use let go (facts.ts).
    const full = decision.method === 'full' ? takeForFullPull(g, run.maxLayerSize) : undefined;
    return {
      layer: g.layer,
      format: g.format,
      source: run.source,
      session: this.session!,
      keys: run.keys,
      provenance: g.layer.diffID ? 'publisher' : 'computed',
      fetched: run.fetched,
      signal: run.signal,
      tarSizeBound: () => full?.bound ?? tarSizeBound(g.chunked, g.facts.runtime, run.maxLayerSize),
      maxLayerSize: run.maxLayerSize,
      resume: this.resumeSession,
      resumed: run.resumed,
      warn: run.warn,
      ...(full?.hints ? { fullPullHints: full.hints } : {}),
    };
  }

  /**
   * Commits in dependency order: each layer (its objects first) under its expected DiffID, the blob
   * records, the image, and last the name, so readers never see an image whose parts are missing.
   * Returns the config digest (the image ID).
   */
  async commit(resolved: ResolvedImage, outcomes: LayerOutcome[]): Promise<Digest> {
    const session = this.session!;
    const store = this.store;
    for (const [i, outcome] of outcomes.entries()) {
      if (!outcome.staged) continue;
      const expected = resolved.layers[i]!.diffID ?? outcome.staged.diffID;
      await session.commitLayer(expected, outcome.staged);
    }
    const computed = resolved.manifest.kind === 'schema1';
    for (const [i, outcome] of outcomes.entries()) {
      await store.recordBlob(resolved.layers[i]!.digest, outcome.diffID, computed ? 'computed' : 'publisher');
    }
    const diffIDs = outcomes.map((o) => o.diffID);
    const config =
      resolved.manifest.kind === 'schema1'
        ? schema1Config(resolved.manifest.schema1.manifest, diffIDs)
        : { bytes: resolved.config!.bytes, digest: resolved.config!.digest };
    const record: ImageRecord = {
      schema: 1,
      configDigest: config.digest,
      diffIDs,
      diffIDsComputed: computed,
      platform: resolved.platform,
      createdAt: new Date().toISOString(),
    };
    const manifest: ManifestRecord = {
      digest: resolved.manifest.digest,
      mediaType: resolved.manifest.mediaType,
      layers: resolved.layers.map((l, i) => ({
        digest: l.digest,
        size: l.size,
        mediaType: l.mediaType,
        diffID: diffIDs[i]!,
      })),
    };
    await store.commitImage(session, record, config.bytes, {
      record: manifest,
      bytes: resolved.manifest.bytes,
    });
    await store.setName(
      storeName(this.reference),
      formatPlatform(resolved.platform),
      config.digest,
      resolved.manifest.digest,
    );
    // Committed: what was kept for a resume is in the store now.
    const resume = this.resumeSession;
    if (resume) await Promise.all(resolved.layers.map((l) => resume.forget(l.digest).catch(() => undefined)));
    return config.digest;
  }

  /** Ends the session; whatever was not committed is discarded (gc removes leftovers). */
  async close(): Promise<void> {
    await Promise.all(this.gathered.map((g) => g.chunked?.pieces?.close()));
    await this.session?.end();
    this.session = undefined;
  }
}

function schema1Config(manifest: Parameters<typeof schema1ToOciConfig>[0], diffIDs: Digest[]) {
  const { bytes } = schema1ToOciConfig(manifest, diffIDs);
  return { bytes, digest: sha256(bytes) };
}
