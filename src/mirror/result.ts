/**
 * What `mirror` reports: one result per image (one JSON line each with --json), a summary line, and
 * the exit code. Field names are a contract for scripts: add fields freely, never rename.
 */
import type { Digest } from '../digest/index.js';
import { ExitCode, type SkiffError } from '../errors/index.js';
import type { TrustReport } from '../trust/index.js';

export interface MirrorCounters {
  blobsCopied: number;
  /** Already at the destination (HEAD said so): neither downloaded nor uploaded. */
  blobsSkipped: number;
  /** Cross-repository mounts: the registry linked the blob, no byte moved. */
  blobsMounted: number;
  manifestsWritten: number;
  /** Bytes written to the destination. */
  bytes: number;
}

export interface MirrorResult extends MirrorCounters {
  source: string;
  destination: string;
  /** The digest of the manifest (or index) the destination reference now names. */
  manifestDigest?: Digest | undefined;
  mediaType?: string | undefined;
  /**
   * When that is an index the copy wrote: its manifests' digests, for carrying their referrers
   * without reading the index again (not reported).
   */
  indexManifests?: Digest[] | undefined;
  /** The destination already held exactly this: nothing was transferred. */
  upToDate: boolean;
  durationMs: number;
  /** Why the copy is not a plain byte copy (conversions, layers left as they are). */
  notes: string[];
  /**
   * Signatures, attestations and SBOMs (cosign tags, OCI referrers) this run wrote beside the image
   * (src/mirror/referrers.ts); undefined when none were looked for (--no-referrers, local ends).
   */
  referrersCopied?: number | undefined;
  /** --sign-by-sigstore-private-key: true when this run wrote the signature, false when it was there. */
  signed?: boolean | undefined;
  /** What the trust policy said of the source (src/trust); absent when the copy failed before. */
  trust?: TrustReport | undefined;
  /**
   * registries.conf endpoints of the source: each attempt that failed and each that served (as
   * `pull --json` lists them); absent when the source was read where its reference names.
   */
  endpoints?: EndpointReport[] | undefined;
  /** --dry-run: the manifests were read and nothing was written; the counters stay 0. */
  dryRun?: boolean | undefined;
  error?: SkiffError | undefined;
}

/** One registries.conf endpoint asked for something (docs/network.md "registries.conf"). */
export interface EndpointReport {
  outcome: 'served' | 'failed';
  /** HOST/REPOSITORY asked. */
  endpoint: string;
  mirror: boolean;
  /** `manifest`, `blob sha256:…`, `ranges of blob sha256:…`. */
  what: string;
  error?: string;
  /** Asked next, after a failure. */
  next?: string;
}

export function emptyCounters(): MirrorCounters {
  return { blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, manifestsWritten: 0, bytes: 0 };
}

/** The JSON line of one image. `error` is null on success, so scripts can test one field. */
export function resultJson(result: MirrorResult): Record<string, unknown> {
  return {
    type: 'image',
    source: result.source,
    destination: result.destination,
    manifestDigest: result.manifestDigest ?? null,
    mediaType: result.mediaType ?? null,
    upToDate: result.upToDate,
    blobsCopied: result.blobsCopied,
    blobsSkipped: result.blobsSkipped,
    blobsMounted: result.blobsMounted,
    manifestsWritten: result.manifestsWritten,
    bytes: result.bytes,
    durationMs: result.durationMs,
    notes: result.notes,
    referrersCopied: result.referrersCopied ?? null,
    signed: result.signed ?? null,
    trust: result.trust ?? null,
    ...(result.endpoints?.length ? { endpoints: result.endpoints } : {}),
    ...(result.dryRun ? { dryRun: true } : {}),
    error: result.error ? result.error.toJSON().error : null,
  };
}

export interface MirrorSummary extends MirrorCounters {
  images: number;
  succeeded: number;
  failed: number;
  upToDate: number;
  durationMs: number;
  exitCode: ExitCode;
  shard?: string | undefined;
}

/**
 * Exit code rule: 0 when every image succeeded; otherwise the code of the first failed image in
 * list order (not completion order, so parallel runs of one list exit the same way).
 */
export function summarize(results: MirrorResult[], durationMs: number, shard?: string): MirrorSummary {
  const counters = emptyCounters();
  for (const r of results) {
    counters.blobsCopied += r.blobsCopied;
    counters.blobsSkipped += r.blobsSkipped;
    counters.blobsMounted += r.blobsMounted;
    counters.manifestsWritten += r.manifestsWritten;
    counters.bytes += r.bytes;
  }
  const failed = results.filter((r) => r.error);
  return {
    images: results.length,
    succeeded: results.length - failed.length,
    failed: failed.length,
    upToDate: results.filter((r) => r.upToDate).length,
    ...counters,
    durationMs,
    exitCode: failed[0]?.error?.exitCode ?? ExitCode.ok,
    ...(shard ? { shard } : {}),
  };
}

export function summaryJson(summary: MirrorSummary): Record<string, unknown> {
  return { type: 'summary', ...summary };
}
