/**
 * The strategy module (docs/design.md §5): the one place that decides, for each layer, whether it is reused,
 * pulled partially or pulled in full, and why. It is pure: facts in, plan out, no I/O, no clock,
 * no randomness, so the same facts always give the same plan, byte for byte.
 *
 * The executor never decides on its own. When it learns something at run time (the registry
 * ignored Range, a TOC failed to verify, a rebuilt tar did not hash to its DiffID), it adds that to
 * the layer's facts and asks `decideLayer` again.
 *
 * This exists because of containers/storage#2180 (see docs/design.md §5): there, five code paths
 * bypassed the chunked pipeline and nobody was told. Here every path has a reason code, and
 * convert-only fails before anything is committed instead of quietly doing something else.
 */
import type { Digest } from '../digest/index.js';
import type { LayerFormat } from '../formats/detect.js';

export type Mode = 'auto' | 'full' | 'convert-only';
export const MODES: readonly Mode[] = ['auto', 'full', 'convert-only'];

export type Method = 'reuse' | 'partial' | 'full';

/** Reason codes, in the order they are reported (docs/design.md §5's table order). */
export const REASON_CODES = [
  'reused',
  'mode-full',
  'not-chunked',
  'no-tarsplit',
  'no-range-support',
  'destination-whole',
  'encrypted',
  'schema1',
  'toc-unverifiable',
  'toc-mismatch',
  'no-saving',
] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

/** A partial pull that would fetch at least this share of the blob saves too little to be worth it. */
export const NO_SAVING_RATIO = 0.9;

export interface TocFacts {
  /** 'ok': the TOC and tar-split were fetched and verified; 'unverifiable': they could not be. */
  state: 'ok' | 'unverifiable';
  /** Bytes a partial pull would fetch (file and chunk ranges, TOC and tar-split included). */
  fetchBytes: number;
  /** Compressed bytes of the blob a partial pull would not need to fetch. */
  reuseBytes: number;
  detail?: string;
}

/** What the executor found out while running; each one sends the layer back here. */
export interface RuntimeFacts {
  /** The source answered a Range request with the whole blob. */
  rangesIgnored?: boolean;
  /** The source serves single ranges but not several in one request. */
  multiRangeRefused?: boolean;
  /** The TOC or tar-split could not be fetched, parsed or verified. */
  tocUnverifiable?: string;
  /** A partial rebuild did not hash to the config's DiffID. */
  diffIDMismatch?: { expected: Digest; actual: Digest };
}

export interface LayerFacts {
  index: number;
  digest: Digest;
  size: number;
  format: LayerFormat;
  /** The DiffID the publisher committed to (from the config); undefined for schema1. */
  diffID: Digest | undefined;
  /** The store already holds this layer. */
  inStore: boolean;
  toc?: TocFacts;
  runtime?: RuntimeFacts;
}

/**
 * What a layer-committing destination can do (the store can do all of it). Blob destinations
 * (registry, oci:, dir:, docker-archive:) are planned by ./copy.ts instead.
 */
export interface LayerCommitCapabilities {
  /** Commits a layer partially fetched from a chunked source (only the files and chunks it lacks). */
  partialCommits: boolean;
  /** Commits a layer only once its tar is proven against the DiffID (or computes it, for schema1). */
  diffIDProvenCommits: boolean;
  /** Reuses a layer it holds by its DiffID. */
  reuseByDiffID: boolean;
  /** Reuses file contents and chunks it holds by their digests. */
  reuseByFileAndChunk: boolean;
}

/** The store's capabilities: the default destination of a plan. */
export const STORE_CAPABILITIES: LayerCommitCapabilities = {
  partialCommits: true,
  diffIDProvenCommits: true,
  reuseByDiffID: true,
  reuseByFileAndChunk: true,
};

export interface ImageFacts {
  manifestKind: 'oci' | 'docker' | 'schema1';
  /** 'yes' for seekable local sources, 'probe' for registries (may turn out not to), 'no' for streams. */
  sourceRanges: 'yes' | 'probe' | 'no';
  mode: Mode;
  /** How many decryption keys the user gave. */
  decryptionKeys: number;
  /** What the destination can do; the store's capabilities when absent. */
  destination?: LayerCommitCapabilities | undefined;
}

export interface LayerDecision {
  index: number;
  digest: Digest;
  method: Method;
  reasons: ReasonCode[];
  /** The layer must be decrypted before it is decompressed. */
  decrypt: boolean;
  /** Bytes the method will fetch (known before any body is fetched). */
  fetchBytes: number;
  /** Compressed bytes of the blob it will not fetch. */
  reuseBytes: number;
  /** Ranges per request for a partial pull (1 once a source refused several at once). */
  rangesPerRequest?: number;
}

export interface LayerViolation {
  index: number;
  digest: Digest;
  /** 'convert-only': the mode forbids what the layer needs (exit 3); 'missing-key': exit 4. */
  kind: 'convert-only' | 'missing-key';
  codes: ReasonCode[];
  message: string;
}

export interface Plan {
  mode: Mode;
  layers: LayerDecision[];
  violations: LayerViolation[];
}

/** Plans every layer of an image. Violations are collected for all layers, not just the first. */
export function planPull(image: ImageFacts, layers: readonly LayerFacts[]): Plan {
  const decisions: LayerDecision[] = [];
  const violations: LayerViolation[] = [];
  for (const layer of layers) {
    const outcome = decideLayer(image, layer);
    if ('kind' in outcome) violations.push(outcome);
    else decisions.push(outcome);
  }
  return { mode: image.mode, layers: decisions, violations };
}

/** Decides one layer. Call again with more facts when the executor learns something. */
export function decideLayer(image: ImageFacts, layer: LayerFacts): LayerDecision | LayerViolation {
  const barriers = partialBarriers(image, layer);
  const convertOnly = image.mode === 'convert-only';

  // Schema1 publishers committed to no DiffIDs: convert-only cannot bind them, reused or not.
  if (convertOnly && barriers.includes('schema1'))
    return violation(
      layer,
      'convert-only',
      ['schema1'],
      'schema1 image: no DiffID was committed by the publisher',
    );
  if (layer.inStore && destinationOf(image).reuseByDiffID) return decision(layer, 'reuse', ['reused'], false);

  const forbidden = barriers.filter((code) => FORBIDDEN_UNDER_CONVERT_ONLY.has(code));
  if (convertOnly && forbidden.length > 0) {
    return violation(
      layer,
      'convert-only',
      forbidden,
      `cannot go through the chunked pipeline (${forbidden.join(', ')})`,
    );
  }
  const decrypt = layer.format.encrypted;
  if (decrypt && image.decryptionKeys === 0) {
    return violation(layer, 'missing-key', ['encrypted'], 'encrypted layer and no --decryption-key given');
  }
  if (image.mode === 'full') return decision(layer, 'full', ['mode-full', ...barriers], decrypt);
  if (barriers.length > 0) return decision(layer, 'full', barriers, decrypt);

  const toc = layer.toc;
  // The executor asks wantsToc() and supplies the TOC facts before planning a candidate.
  if (!toc) throw new Error(`decideLayer: layer ${layer.index} could be partial but came without TOC facts`);
  // A partial pull that saves (almost) nothing is slower than one streaming GET (the `no-saving` row of docs/design.md §5).
  if (!convertOnly && toc.fetchBytes >= NO_SAVING_RATIO * layer.size)
    return decision(layer, 'full', ['no-saving'], false);
  return {
    index: layer.index,
    digest: layer.digest,
    method: 'partial',
    reasons: [],
    decrypt: false,
    fetchBytes: toc.fetchBytes,
    reuseBytes: toc.reuseBytes,
    ...(layer.runtime?.multiRangeRefused ? { rangesPerRequest: 1 } : {}),
  };
}

/**
 * Whether the executor should fetch this layer's TOC to plan it: exactly when a verified TOC could
 * make the layer partial. Asked of the same rules, so fetching is never decided anywhere else.
 */
export function wantsToc(image: ImageFacts, layer: LayerFacts): boolean {
  if (layer.toc) return false;
  const hypothetical = decideLayer(image, {
    ...layer,
    toc: { state: 'ok', fetchBytes: 0, reuseBytes: layer.size },
  });
  return 'method' in hypothetical && hypothetical.method === 'partial';
}

const FORBIDDEN_UNDER_CONVERT_ONLY = new Set<ReasonCode>([
  'encrypted',
  'schema1',
  'toc-unverifiable',
  'toc-mismatch',
  'destination-whole',
]);

function destinationOf(image: ImageFacts): LayerCommitCapabilities {
  return image.destination ?? STORE_CAPABILITIES;
}

/** Every reason this layer cannot be pulled partially, in report order. */
function partialBarriers(image: ImageFacts, layer: LayerFacts): ReasonCode[] {
  const codes = new Set<ReasonCode>();
  const { format, runtime } = layer;
  if (format.encrypted) codes.add('encrypted');
  else if (!format.chunked) codes.add('not-chunked');
  else if (!format.hasTarSplit) codes.add('no-tarsplit');
  if (image.manifestKind === 'schema1') codes.add('schema1');
  if (format.chunked && (image.sourceRanges === 'no' || runtime?.rangesIgnored))
    codes.add('no-range-support');
  // A partial result is committed only by a destination that assembles layers from their files
  // and chunks and proves them against the DiffID.
  const destination = destinationOf(image);
  if (
    format.chunked &&
    !(destination.partialCommits && destination.diffIDProvenCommits && destination.reuseByFileAndChunk)
  )
    codes.add('destination-whole');
  if (runtime?.tocUnverifiable || layer.toc?.state === 'unverifiable') codes.add('toc-unverifiable');
  if (runtime?.diffIDMismatch) codes.add('toc-mismatch');
  // A partial result must be proven against a DiffID; without one (schema1) it never is attempted.
  return REASON_CODES.filter((code) => codes.has(code));
}

function decision(layer: LayerFacts, method: Method, reasons: ReasonCode[], decrypt: boolean): LayerDecision {
  const fetchBytes = method === 'reuse' ? 0 : layer.size;
  return {
    index: layer.index,
    digest: layer.digest,
    method,
    reasons: REASON_CODES.filter((code) => reasons.includes(code)),
    decrypt,
    fetchBytes,
    reuseBytes: layer.size - fetchBytes,
  };
}

function violation(
  layer: LayerFacts,
  kind: LayerViolation['kind'],
  codes: ReasonCode[],
  message: string,
): LayerViolation {
  return {
    index: layer.index,
    digest: layer.digest,
    kind,
    codes: REASON_CODES.filter((c) => codes.includes(c)),
    message,
  };
}

export function isViolation(outcome: LayerDecision | LayerViolation): outcome is LayerViolation {
  return 'kind' in outcome;
}
