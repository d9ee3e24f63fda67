/** The machine-readable pull report (docs/design.md §8) and its one-line human summary. */
import type { Digest } from '../digest/index.js';
import type { ReportFormat } from '../formats/detect.js';
import type { Method, Mode, ReasonCode } from '../strategy/index.js';
import type { TrustReport } from '../trust/index.js';
import { formatBytes } from '../util/present.js';

export interface LayerReport {
  digest: Digest;
  /** Undefined only in a dry run of a schema1 image (DiffIDs are computed while pulling). */
  diffID: Digest | undefined;
  mediaType: string;
  format: ReportFormat;
  method: Method;
  reasons: ReasonCode[];
  /** Every byte skiff asked the source for: TOC, tar-split and footer included. */
  bytesFetched: number;
  /** Of bytesFetched, the bytes read to plan a partial pull (TOC, tar-split, footer); 0 if none. */
  tocBytesFetched: number;
  bytesReused: number;
  /**
   * Bytes of the blob not fetched because an interrupted pull had fetched them (hashed again
   * before use); not in bytesFetched. 0 when nothing was resumed.
   */
  bytesResumed: number;
  /** Compressed size, as the registry stores the blob and the manifest states it. */
  size: number;
}

export interface PullReport {
  reference: string;
  name: string;
  manifestDigest: Digest;
  indexDigest?: Digest | undefined;
  configDigest: Digest | undefined;
  platform: string;
  mode: Mode;
  dryRun: boolean;
  layers: LayerReport[];
  bytesFetched: number;
  bytesReused: number;
  bytesResumed: number;
  durationMs: number;
  warnings: string[];
  /** Which trust policy requirement accepted the image, with which key or identity (src/trust). */
  trust: TrustReport;
}

/**
 * Why a layer's FETCHED is what it is when its TOC was read, e.g. `TOC+tar-split 45.6 kB, then
 * no saving: fetched whole` (which is how a layer can fetch more than its size).
 */
export function fetchNote(layer: LayerReport): string | undefined {
  if (layer.tocBytesFetched === 0) return undefined;
  const toc = `TOC+tar-split ${formatBytes(layer.tocBytesFetched)}`;
  if (layer.method === 'partial')
    return `${toc} + ${formatBytes(layer.bytesFetched - layer.tocBytesFetched)} of contents`;
  if (layer.method === 'full')
    return `${toc}, then ${layer.reasons.join(', ').replaceAll('-', ' ')}: fetched whole`;
  return toc;
}

/**
 * `fetched 2.1 MB of 38.3 MB (94% reused)`: bytes fetched against the layers' size, and the share
 * of that size not fetched. (Fetched bytes include TOC reads, so they can exceed a layer's size.)
 */
export function savingsLine(report: Pick<PullReport, 'bytesFetched' | 'bytesReused' | 'layers'>): string {
  const total = report.layers.reduce((sum, l) => sum + l.size, 0);
  const reused = total === 0 ? 100 : Math.round((100 * report.bytesReused) / total);
  return `fetched ${formatBytes(report.bytesFetched)} of ${formatBytes(total)} (${reused}% reused)`;
}
