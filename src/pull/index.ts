/**
 * `skiff pull`: reference → manifest → plan → fetch → verify → commit, in that order and no other.
 * The strategy module decides every layer's method; this module carries the plan out, feeds
 * run-time facts back to the strategy module, and commits only when every layer has succeeded,
 * so a failed pull leaves the store exactly as it was.
 */
import pLimit from 'p-limit';
import { type Digest, sha256 } from '../digest/index.js';
import { asSkiffError, ConvertOnlyError, SkiffError, VerificationError } from '../errors/index.js';
import { DEFAULT_MAX_LAYER_SIZE } from '../formats/compression.js';
import type { DecryptionKey } from '../formats/encryption/keys.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../manifest/index.js';
import { schema1ToOciConfig } from '../manifest/schema1.js';
import { formatReference, type ImageReference, parseReference, storeName } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { StagedLayer } from '../store/ingest.js';
import type { ImageRecord, ManifestRecord } from '../store/records.js';
import type { ResumeSession } from '../store/resume.js';
import type { Store, StoreSession } from '../store/store.js';
import { storeWriteFailure } from '../store/write-failure.js';
import {
  decideLayer,
  type ImageFacts,
  isViolation,
  type LayerDecision,
  type LayerViolation,
  type Mode,
  planPull,
} from '../strategy/index.js';
import { type ImageSource, openSource } from '../transport/index.js';
import { shortDigest } from '../util/present.js';
import type { LayerContext } from './context.js';
import { type GatheredLayer, gatherLayerFacts } from './facts.js';
import { pullFull, tarSizeBound } from './layer-full.js';
import { chunkRefs, pullPartial, RuntimeFactError, tocDigestsByPath } from './partial.js';
import { type PullProgress, SILENT_PROGRESS } from './progress.js';
import type { LayerReport, PullReport } from './report.js';
import { type ResolvedImage, resolveImage } from './resolve.js';

export type { PullReport } from './report.js';

export interface PullOptions {
  reference: string;
  store: Store;
  client: RegistryClient;
  /** os/arch[/variant]; the host's platform when absent. */
  platform?: string | undefined;
  mode?: Mode;
  /** Layers fetched at once. */
  jobs?: number;
  dryRun?: boolean;
  decryptionKeys?: DecryptionKey[];
  progress?: PullProgress;
  signal?: AbortSignal;
  /** Bytes a layer's tar may have where nothing verified says (DEFAULT_MAX_LAYER_SIZE). */
  maxLayerSize?: number;
}

export async function pull(options: PullOptions): Promise<PullReport> {
  const started = performance.now();
  const reference = parseReference(options.reference);
  const context = { image: options.reference };
  const source = openSource(reference, options.client);
  try {
    return await pullFrom(source, reference, options, started);
  } catch (error) {
    throw asSkiffError(storeWriteFailure(error, options.store.root) ?? error, context);
  } finally {
    await source.close();
  }
}

async function pullFrom(
  source: ImageSource,
  reference: ImageReference,
  options: PullOptions,
  started: number,
): Promise<PullReport> {
  const mode = options.mode ?? 'auto';
  const keys = options.decryptionKeys ?? [];
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  const resolved = await resolveImage(source, {
    platform: options.platform ? parsePlatform(options.platform) : hostPlatform(),
    explicitPlatform: options.platform !== undefined,
    pinnedDigest: reference.transport === 'docker' ? reference.digest : undefined,
    signal,
  });
  const image: ImageFacts = {
    manifestKind: resolved.manifest.kind === 'schema1' ? 'schema1' : resolved.manifest.flavor,
    sourceRanges: source.rangeSupport,
    mode,
    decryptionKeys: keys.length,
  };
  // The session starts before the store is consulted, so gc cannot remove what the plan reuses.
  const session = options.dryRun ? undefined : await options.store.beginSession();
  const warnings: string[] = [];
  const warn = (message: string) => warnings.push(message);
  // Only what is costly to fetch again is kept for a later pull: a remote source's bytes.
  const resume = session && source.openBlobFrom ? options.store.resume.forSession(session.id) : undefined;
  let gathered: GatheredLayer[] = [];
  try {
    gathered = await gatherLayerFacts(
      resolved,
      image,
      options.store,
      source,
      signal,
      resume && { session: resume, warn },
    );
    const plan = planPull(
      image,
      gathered.map((g) => g.facts),
    );
    if (plan.violations.length > 0) throw violationError(plan.violations, mode);
    const base = { reference, resolved, mode, started, gathered, warnings };
    if (!session)
      return buildReport({
        ...base,
        decisions: plan.layers,
        outcomes: undefined,
        configDigest: resolved.config?.digest,
      });
    const outcomes = await executeLayers(plan.layers, gathered, image, {
      source,
      session,
      keys,
      progress: options.progress ?? SILENT_PROGRESS,
      jobs: options.jobs ?? 3,
      signal,
      abort,
      maxLayerSize: options.maxLayerSize ?? DEFAULT_MAX_LAYER_SIZE,
      resume,
      warn,
    });
    const configDigest = await commitAll(session, reference, resolved, gathered, outcomes);
    // Committed: what was kept for a resume is in the store now.
    if (resume) await Promise.all(gathered.map((g) => resume.forget(g.layer.digest).catch(() => undefined)));
    return buildReport({ ...base, decisions: outcomes.map((o) => o.decision), outcomes, configDigest });
  } finally {
    abort.abort();
    await Promise.all(gathered.map((g) => g.chunked?.pieces?.close()));
    await session?.end();
  }
}

interface ExecutionEnv {
  source: ImageSource;
  session: StoreSession;
  keys: DecryptionKey[];
  progress: PullProgress;
  jobs: number;
  signal: AbortSignal;
  abort: AbortController;
  maxLayerSize: number;
  resume: ResumeSession | undefined;
  warn(message: string): void;
}

interface LayerOutcome {
  decision: LayerDecision;
  staged?: StagedLayer;
  /** The DiffID the layer is committed (or reused) under. */
  diffID: Digest;
  bytesFetched: number;
  /** Bytes held from an interrupted pull, verified again, not fetched. */
  bytesResumed: number;
}

/** Runs every layer's decision, a bounded number at once; the first failure stops the others. */
async function executeLayers(
  decisions: LayerDecision[],
  gathered: GatheredLayer[],
  image: ImageFacts,
  env: ExecutionEnv,
): Promise<LayerOutcome[]> {
  const limit = pLimit(env.jobs);
  const runs = decisions.map((decision, i) =>
    limit(async () => {
      if (env.signal.aborted) throw env.signal.reason;
      try {
        return await runLayer(decision, gathered[i]!, image, env);
      } catch (error) {
        env.abort.abort(error);
        throw error;
      }
    }),
  );
  const settled = await Promise.allSettled(runs);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  // The first real error, not the aborts it caused in sibling layers.
  if (failure) throw env.signal.reason ?? failure.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<LayerOutcome>).value);
}

/** Executes one layer's plan, going back to the strategy module whenever the run reveals a fact. */
async function runLayer(
  initial: LayerDecision,
  g: GatheredLayer,
  image: ImageFacts,
  env: ExecutionEnv,
): Promise<LayerOutcome> {
  let decision = initial;
  let bytesFetched = g.planningBytes;
  let bytesResumed = 0;
  const ctx: LayerContext = {
    layer: g.layer,
    format: g.format,
    source: env.source,
    session: env.session,
    keys: env.keys,
    provenance: g.layer.diffID ? 'publisher' : 'computed',
    fetched: (n) => {
      bytesFetched += n;
      env.progress.layerBytes(g.layer.index, n);
    },
    signal: env.signal,
    tarSizeBound: () => tarSizeBound(g.chunked, g.facts.runtime, env.maxLayerSize),
    maxLayerSize: env.maxLayerSize,
    resume: env.resume,
    resumed: (n) => {
      bytesResumed += n;
    },
    warn: env.warn,
    ...(g.chunked
      ? {
          fullPullHints: {
            knownDigest: tocDigestsByPath(g.chunked.toc),
            chunks: () => chunkRefs(g.chunked!.toc),
          },
        }
      : {}),
  };
  for (;;) {
    if (decision.method === 'reuse') {
      env.progress.layerStart(g.layer.index, g.layer.digest, 'reuse', 0);
      env.progress.layerDone(g.layer.index, true);
      return { decision, diffID: g.storedDiffID!, bytesFetched, bytesResumed };
    }
    env.progress.layerStart(g.layer.index, g.layer.digest, decision.method, decision.fetchBytes);
    // A partial plan's bytes include the TOC and tar-split, fetched while planning: count them
    // as done, so the bar and the report say the same.
    if (decision.method === 'partial' && g.planningBytes > 0)
      env.progress.layerBytes(g.layer.index, g.planningBytes);
    try {
      // A retry of the layer (after a run-time fact) counts only what that attempt held.
      bytesResumed = decision.method === 'partial' ? g.chunked!.resumedBytes : 0;
      const staged =
        decision.method === 'partial' ? await pullPartial(ctx, g.chunked!, decision) : await pullFull(ctx);
      env.progress.layerDone(g.layer.index, true);
      return { decision, staged, diffID: staged.diffID, bytesFetched, bytesResumed };
    } catch (error) {
      if (!(error instanceof RuntimeFactError)) {
        env.progress.layerDone(g.layer.index, false);
        // Whatever failed, the one line names the layer it failed on.
        const failure = storeWriteFailure(error, env.session.store.root, { digest: g.layer.digest }) ?? error;
        throw failure instanceof SkiffError ? failure.withContext({ digest: g.layer.digest }) : failure;
      }
      g.facts.runtime = { ...g.facts.runtime, ...error.fact };
      const next = decideLayer(image, g.facts);
      if (isViolation(next)) throw violationError([next], image.mode);
      decision = next;
    }
  }
}

/**
 * Commits in dependency order: each layer (its objects first) under its expected DiffID, the blob
 * records, the image, and last the name, so readers never see an image whose parts are missing.
 */
async function commitAll(
  session: StoreSession,
  reference: ImageReference,
  resolved: ResolvedImage,
  gathered: GatheredLayer[],
  outcomes: LayerOutcome[],
): Promise<Digest> {
  const store = session.store;
  for (const [i, outcome] of outcomes.entries()) {
    if (!outcome.staged) continue;
    const expected = gathered[i]!.layer.diffID ?? outcome.staged.diffID;
    await session.commitLayer(expected, outcome.staged);
  }
  const computed = resolved.manifest.kind === 'schema1';
  for (const [i, outcome] of outcomes.entries()) {
    await store.recordBlob(gathered[i]!.layer.digest, outcome.diffID, computed ? 'computed' : 'publisher');
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
    storeName(reference),
    formatPlatform(resolved.platform),
    config.digest,
    resolved.manifest.digest,
  );
  return config.digest;
}

function schema1Config(manifest: Parameters<typeof schema1ToOciConfig>[0], diffIDs: Digest[]) {
  const { bytes } = schema1ToOciConfig(manifest, diffIDs);
  return { bytes, digest: sha256(bytes) };
}

function violationError(violations: LayerViolation[], mode: Mode) {
  const list = violations.map((v) => `${shortDigest(v.digest)} (${v.codes.join(', ')})`).join(', ');
  const convertOnly = violations.filter((v) => v.kind === 'convert-only');
  if (convertOnly.length > 0) {
    return new ConvertOnlyError(
      `--mode ${mode}: ${convertOnly.length} layer(s) cannot go through the chunked pipeline: ${list}; nothing was committed`,
      { digest: violations[0]!.digest },
    );
  }
  return new VerificationError(
    `${violations.length} layer(s) are encrypted and no --decryption-key was given: ${list}`,
    { digest: violations[0]!.digest },
  );
}

interface ReportInput {
  reference: ImageReference;
  resolved: ResolvedImage;
  mode: Mode;
  started: number;
  gathered: GatheredLayer[];
  decisions: LayerDecision[];
  outcomes: LayerOutcome[] | undefined;
  configDigest: Digest | undefined;
  warnings: string[];
}

function buildReport(input: ReportInput): PullReport {
  const { resolved, gathered, decisions, outcomes } = input;
  const layers: LayerReport[] = decisions.map((decision, i) => {
    const g = gathered[i]!;
    const outcome = outcomes?.[i];
    return {
      digest: g.layer.digest,
      diffID: outcome?.diffID ?? g.layer.diffID ?? g.storedDiffID,
      mediaType: g.layer.mediaType,
      format: g.format.report,
      method: decision.method,
      reasons: decision.reasons,
      // A real run reports what it did fetch; a dry run what it fetched to plan (TOC, tar-split)
      // and what the plan would fetch besides (a partial plan's figure counts the TOC already).
      bytesFetched: outcome
        ? outcome.bytesFetched
        : decision.fetchBytes + (decision.method === 'partial' ? 0 : g.planningBytes),
      tocBytesFetched: g.planningBytes,
      bytesReused: decision.reuseBytes,
      bytesResumed: outcome?.bytesResumed ?? 0,
      size: g.layer.size,
    };
  });
  return {
    reference: formatReference(input.reference),
    name: storeName(input.reference),
    manifestDigest: resolved.manifest.digest,
    ...(resolved.index ? { indexDigest: resolved.index.digest } : {}),
    configDigest: input.configDigest,
    platform: formatPlatform(resolved.platform),
    mode: input.mode,
    dryRun: outcomes === undefined,
    layers,
    bytesFetched: layers.reduce((sum, l) => sum + l.bytesFetched, 0),
    bytesReused: layers.reduce((sum, l) => sum + l.bytesReused, 0),
    bytesResumed: layers.reduce((sum, l) => sum + l.bytesResumed, 0),
    durationMs: Math.round(performance.now() - input.started),
    warnings: [...resolved.warnings, ...input.warnings],
  };
}
