/**
 * The engine's path into a layer-committing destination (the store): resolve → facts → plan →
 * fetch → verify → commit, in that order and no other. The strategy module decides every layer's
 * method from the facts and the destination's capabilities; the engine carries the plan out
 * through the destination, takes run-time facts back to the strategy module (bounded, in
 * replan.ts), and commits only when every layer has succeeded, so a failed copy leaves the store
 * exactly as it was.
 */
import pLimit from 'p-limit';
import { asSkiffError, ConvertOnlyError, SkiffError, VerificationError } from '../errors/index.js';
import { DEFAULT_MAX_LAYER_SIZE } from '../formats/compression.js';
import type { DecryptionKey } from '../formats/encryption/keys.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../manifest/index.js';
import type { PullProgress } from '../pull/progress.js';
import { SILENT_PROGRESS } from '../pull/progress.js';
import type { LayerReport, PullReport } from '../pull/report.js';
import { formatReference, storeName } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { storeWriteFailure } from '../store/index.js';
import {
  decideLayer,
  type ImageFacts,
  isViolation,
  type LayerDecision,
  type LayerViolation,
  type Mode,
  planPull,
} from '../strategy/index.js';
import type { ImageSource } from '../transport/index.js';
import { enforceTrustPolicy, type TrustReport, type TrustSettings } from '../trust/index.js';
import { shortDigest } from '../util/present.js';
import { RuntimeFactError, runWithReplans } from './replan.js';
import { pinnedDigestOf, type ResolvedImage, resolveImage } from './resolve.js';
import type { GatheredLayer } from './store/facts.js';
import type { LayerOutcome, LayerRun, StoreDestination } from './store-destination.js';

export interface StoreCopyOptions {
  /** The reference as the user wrote it (errors and the report name it). */
  reference: string;
  /** os/arch[/variant]; the host's platform when absent. */
  platform?: string | undefined;
  mode?: Mode | undefined;
  /** Layers fetched at once. */
  jobs?: number | undefined;
  dryRun?: boolean | undefined;
  decryptionKeys?: DecryptionKey[] | undefined;
  progress?: PullProgress | undefined;
  signal?: AbortSignal | undefined;
  /** Bytes a layer's tar may have where nothing verified says (DEFAULT_MAX_LAYER_SIZE). */
  maxLayerSize?: number | undefined;
  /** The trust policy and registries.d (src/trust), and the client that fetches signatures. */
  trust?: { settings: TrustSettings | undefined; client: RegistryClient } | undefined;
}

/** Copies one image from `source` into the store; the report is `pull --json`'s. */
export async function copyToStore(
  source: ImageSource,
  destination: StoreDestination,
  options: StoreCopyOptions,
): Promise<PullReport> {
  const started = performance.now();
  try {
    return await copyResolved(source, destination, options, started);
  } catch (error) {
    throw asSkiffError(storeWriteFailure(error, destination.store.root) ?? error, {
      image: options.reference,
    });
  }
}

async function copyResolved(
  source: ImageSource,
  destination: StoreDestination,
  options: StoreCopyOptions,
  started: number,
): Promise<PullReport> {
  const mode = options.mode ?? 'auto';
  const keys = options.decryptionKeys ?? [];
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  const resolved = await resolveImage(source, {
    platform: options.platform ? parsePlatform(options.platform) : hostPlatform(),
    explicitPlatform: options.platform !== undefined,
    pinnedDigest: pinnedDigestOf(source.reference),
    signal,
  });
  // The policy accepts or refuses (exit 6) before any layer is fetched.
  const trust: TrustReport = options.trust
    ? await enforceTrustPolicy({
        ...options.trust,
        reference: source.reference,
        manifestDigest: resolved.manifest.digest,
        signal,
      })
    : { policy: 'none' };
  const image: ImageFacts = {
    manifestKind: resolved.manifest.kind === 'schema1' ? 'schema1' : resolved.manifest.flavor,
    sourceRanges: source.rangeSupport,
    mode,
    decryptionKeys: keys.length,
    destination: destination.capabilities,
  };
  const warnings: string[] = [];
  const warn = (message: string) => warnings.push(message);
  try {
    await destination.begin(source, { dryRun: options.dryRun ?? false });
    const gathered = await destination.layerFacts(resolved, image, source, signal, warn);
    const plan = planPull(
      image,
      gathered.map((g) => g.facts),
    );
    if (plan.violations.length > 0) throw violationError(plan.violations, mode);
    const base = { destination, resolved, mode, started, gathered, warnings, trust };
    if (!destination.writing)
      return buildReport({
        ...base,
        decisions: plan.layers,
        outcomes: undefined,
        configDigest: resolved.config?.digest,
      });
    const outcomes = await executeLayers(plan.layers, gathered, image, destination, {
      run: {
        source,
        keys,
        signal,
        maxLayerSize: options.maxLayerSize ?? DEFAULT_MAX_LAYER_SIZE,
        warn,
        fetched: () => {},
        resumed: () => {},
      },
      progress: options.progress ?? SILENT_PROGRESS,
      jobs: options.jobs ?? 3,
      abort,
    });
    const configDigest = await destination.commit(resolved, outcomes);
    return buildReport({ ...base, decisions: outcomes.map((o) => o.decision), outcomes, configDigest });
  } finally {
    abort.abort();
    await destination.close();
  }
}

interface ExecutionEnv {
  /** Shared by every layer; each layer's run gets its own meters. */
  run: LayerRun;
  progress: PullProgress;
  jobs: number;
  abort: AbortController;
}

/** Runs every layer's decision, a bounded number at once; the first failure stops the others. */
async function executeLayers(
  decisions: LayerDecision[],
  gathered: GatheredLayer[],
  image: ImageFacts,
  destination: StoreDestination,
  env: ExecutionEnv,
): Promise<LayerOutcome[]> {
  const limit = pLimit(env.jobs);
  const { signal } = env.run;
  const runs = decisions.map((decision, i) =>
    limit(async () => {
      if (signal.aborted) throw signal.reason;
      try {
        return await runLayer(decision, gathered[i]!, image, destination, env);
      } catch (error) {
        env.abort.abort(error);
        throw error;
      }
    }),
  );
  const settled = await Promise.allSettled(runs);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  // The first real error, not the aborts it caused in sibling layers.
  if (failure) throw signal.reason ?? failure.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<LayerOutcome>).value);
}

/** Executes one layer's plan, going back to the strategy module whenever the run reveals a fact. */
function runLayer(
  initial: LayerDecision,
  g: GatheredLayer,
  image: ImageFacts,
  destination: StoreDestination,
  env: ExecutionEnv,
): Promise<LayerOutcome> {
  const { index, digest } = g.layer;
  let bytesFetched = g.planningBytes;
  let bytesResumed = 0;
  const run: LayerRun = {
    ...env.run,
    fetched: (n) => {
      bytesFetched += n;
      env.progress.layerBytes(index, n);
    },
    resumed: (n) => {
      bytesResumed += n;
    },
  };
  return runWithReplans(initial, {
    what: `layer ${digest}`,
    attempt: async (decision): Promise<LayerOutcome> => {
      if (decision.method === 'reuse') {
        env.progress.layerStart(index, digest, 'reuse', 0);
        env.progress.layerDone(index, true);
        return { decision, diffID: g.storedDiffID!, bytesFetched, bytesResumed };
      }
      env.progress.layerStart(index, digest, decision.method, decision.fetchBytes);
      // A partial plan's bytes include the TOC and tar-split, fetched while planning: count them
      // as done, so the bar and the report say the same.
      if (decision.method === 'partial' && g.planningBytes > 0)
        env.progress.layerBytes(index, g.planningBytes);
      // A retry of the layer (after a run-time fact) counts only what that attempt held.
      bytesResumed = decision.method === 'partial' ? g.chunked!.resumedBytes : 0;
      try {
        const staged = (await destination.commitLayer(decision, g, run))!;
        env.progress.layerDone(index, true);
        return { decision, staged, diffID: staged.diffID, bytesFetched, bytesResumed };
      } catch (error) {
        if (error instanceof RuntimeFactError) throw error;
        env.progress.layerDone(index, false);
        // Whatever failed, the one line names the layer it failed on.
        const failure = storeWriteFailure(error, destination.store.root, { digest }) ?? error;
        throw failure instanceof SkiffError ? failure.withContext({ digest }) : failure;
      }
    },
    replan: (fact) => {
      g.facts.runtime = { ...g.facts.runtime, ...fact };
      const next = decideLayer(image, g.facts);
      if (isViolation(next)) throw violationError([next], image.mode);
      return next;
    },
  });
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
  destination: StoreDestination;
  resolved: ResolvedImage;
  mode: Mode;
  started: number;
  gathered: GatheredLayer[];
  decisions: LayerDecision[];
  outcomes: LayerOutcome[] | undefined;
  configDigest: PullReport['configDigest'];
  warnings: string[];
  trust: PullReport['trust'];
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
  const reference = input.destination.reference;
  return {
    reference: formatReference(reference),
    name: storeName(reference),
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
    trust: input.trust,
  };
}
