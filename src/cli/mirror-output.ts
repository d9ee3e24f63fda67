/** Human output of `skiff mirror`: a line per image and a summary (progress: ./progress.ts). */
import type { MergedReport, MirrorResult, MirrorSummary } from '../mirror/index.js';
import { formatBytes, formatDuration, shortDigest } from '../util/present.js';

/** Where output goes: straight to the stream, or around a live progress display. */
export type Write = (stream: NodeJS.WriteStream, text: string) => void;
const direct: Write = (stream, text) => stream.write(text);

export function printMirrorResult(result: MirrorResult, write: Write = direct): void {
  const route = `${result.source} -> ${result.destination}`;
  if (result.error) {
    const { message, context } = result.error;
    const layer =
      context.digest && !message.includes(context.digest) ? ` (${shortDigest(context.digest)})` : '';
    write(process.stderr, `skiff: failed ${route}: ${message.replace(/\s*\n\s*/g, '; ')}${layer}\n`);
    return;
  }
  const digest = result.manifestDigest ? shortDigest(result.manifestDigest) : '';
  const referrers =
    (result.referrersCopied === undefined ? '' : `, ${result.referrersCopied} referrers copied`) +
    (result.signed === undefined ? '' : result.signed ? ', signed' : ', signature already there');
  const line = result.upToDate
    ? `up to date ${route} ${digest} (no blob transferred${referrers})`
    : result.dryRun
      ? `would mirror ${route} ${digest}`.trimEnd()
      : `mirrored ${route} ${digest} (${result.blobsCopied} blobs copied, ${result.blobsSkipped} skipped, ${result.blobsMounted} mounted${referrers}, ${formatBytes(result.bytes)}, ${formatDuration(result.durationMs)})`;
  const notes = [...result.notes, ...servedBy(result)];
  write(process.stdout, `${line}\n${notes.map((n) => `  note: ${n}\n`).join('')}`);
}

/**
 * Where registries.conf sent the copy, when a mirror was involved: which endpoint served what
 * (each failure already had its line on stderr as it happened).
 */
function servedBy(result: MirrorResult): string[] {
  const endpoints = result.endpoints ?? [];
  if (!endpoints.some((e) => e.mirror)) return [];
  const mirrorFailed = endpoints.some((e) => e.mirror && e.outcome === 'failed');
  // What each endpoint served, in the order first served.
  const served = new Map<string, { mirror: boolean; what: string[] }>();
  for (const e of endpoints.filter((e) => e.outcome === 'served')) {
    const entry = served.get(e.endpoint) ?? { mirror: e.mirror, what: [] };
    if (!entry.what.includes(e.what)) entry.what.push(e.what);
    served.set(e.endpoint, entry);
  }
  return [...served].map(([endpoint, { mirror, what }]) =>
    mirror
      ? `${what.join(', ')} from mirror ${endpoint} (registries.conf), not the primary`
      : `${what.join(', ')} from ${endpoint}${mirrorFailed ? ' after a mirror failed' : ''}`,
  );
}

export function printMirrorSummary(summary: MirrorSummary): void {
  if (summary.images < 2 && summary.failed === 0) return;
  const parts = [
    `${summary.images} image(s)${summary.shard ? ` in shard ${summary.shard}` : ''}: ${summary.succeeded - summary.upToDate} mirrored, ${summary.upToDate} up to date, ${summary.failed} failed`,
    `${summary.blobsCopied} blobs copied, ${summary.blobsSkipped} skipped, ${summary.blobsMounted} mounted, ${formatBytes(summary.bytes)}`,
  ];
  process.stdout.write(`${parts.join('; ')}\n`);
}

/** mirror --dry-run: the manifest GETs a run makes, by registry (what a metering registry counts). */
export function sayManifestGets(counts: Record<string, number>): void {
  const hosts = Object.entries(counts);
  const list = hosts.length ? hosts.map(([host, n]) => `${host} ${n}`).join(', ') : 'none';
  process.stdout.write(`manifest GETs a run makes: ${list}\n`);
}

/** Human output of `skiff mirror-report`: what went wrong, item by item, then one summary line. */
export function printMergedReport(report: MergedReport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  for (const problem of report.problems) out(`problem: ${problem}`);
  for (const note of report.notes) out(`note: ${note}`);
  for (const item of report.items) {
    const error = item.result.error;
    if (error)
      out(
        `failed ${item.source} -> ${item.destination} (shard ${item.shard}): ${error.message} (exit ${error.exitCode})`,
      );
  }
  for (const item of report.unaccounted) out(`not mirrored ${item.key.replace(' ', ' -> ')}: ${item.why}`);
  const s = report.summary;
  out(
    `${s.items} item(s) in ${report.shardCount} shard(s): ${s.succeeded - s.upToDate} mirrored, ${s.upToDate} up to date, ${s.failed} failed, ${s.unaccounted} not accounted for; ${s.blobsCopied} blobs copied, ${s.blobsSkipped} skipped, ${s.blobsMounted} mounted, ${formatBytes(s.bytes)}`,
  );
}
