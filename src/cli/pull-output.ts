/** Human output of `skiff pull`: the plan per layer, the image, and what the pull saved. */
import { fetchNote, type PullReport, savingsLine } from '../pull/report.js';
import type { TrustReport } from '../trust/index.js';
import { formatBytes, formatDuration, shortDigest } from '../util/present.js';
import { table } from './table.js';

/** `signature: sigstoreSigned by /keys/pub.pem for host/app:v1`, when a signature accepted the image. */
export function trustLine(trust: TrustReport | undefined): string | undefined {
  if (!trust || !('acceptedBy' in trust)) return undefined;
  const signed = trust.acceptedBy.filter((a) => a.signer);
  if (signed.length === 0) return undefined;
  return signed.map((a) => `signature: ${a.type} by ${a.signer} for ${a.signedIdentity}`).join('\n');
}

export function printPullReport(report: PullReport): void {
  const out: string[] = [];
  for (const warning of report.warnings) process.stderr.write(`skiff: warning: ${warning}\n`);
  out.push(
    `${report.dryRun ? 'Plan for' : 'Pulled'} ${report.reference} (${report.platform}, mode ${report.mode})`,
  );
  // SIZE is compressed (as in images and inspect); a NOTE says what FETCHED holds beyond it.
  const notes = report.layers.map(fetchNote);
  const noted = notes.some((n) => n !== undefined);
  out.push(
    table(
      ['LAYER', 'FORMAT', 'METHOD', 'REASONS', 'FETCHED', 'SIZE', ...(noted ? ['NOTE'] : [])],
      report.layers.map((l, i) => [
        shortDigest(l.digest),
        l.format,
        l.method,
        l.reasons.join(',') || '-',
        formatBytes(l.bytesFetched),
        formatBytes(l.size),
        ...(noted ? [notes[i] ?? '-'] : []),
      ]),
    ),
  );
  if (!report.dryRun && report.configDigest)
    out.push(`image ${report.configDigest} stored as ${report.name}`);
  out.push(
    `${report.dryRun ? 'would have ' : ''}${savingsLine(report)}${report.dryRun ? '' : ` in ${formatDuration(report.durationMs)}`}`,
  );
  if (report.bytesResumed > 0) out.push(`resumed: ${formatBytes(report.bytesResumed)} already verified`);
  const signed = trustLine(report.trust);
  if (signed) out.push(signed);
  process.stdout.write(`${out.join('\n')}\n`);
}
