/** Human output of `skiff mirror`: a line per image, a summary, and progress bars on a TTY. */
import type cliProgressModule from 'cli-progress';
import { shortDigest } from '../errors/index.js';
import type { MirrorProgress, MirrorResult, MirrorSummary } from '../mirror/index.js';
import { formatBytes } from '../pull/report.js';
import { byteBars, sayOnStderr, type TerminalOutput } from './progress.js';

export function printMirrorResult(result: MirrorResult): void {
  const route = `${result.source} -> ${result.destination}`;
  if (result.error) {
    printMirrorFailure(result);
    return;
  }
  const digest = result.manifestDigest ? shortDigest(result.manifestDigest) : '';
  const line = result.upToDate
    ? `up to date ${route} ${digest} (no blob transferred)`
    : `mirrored ${route} ${digest} (${result.blobsCopied} blobs copied, ${result.blobsSkipped} skipped, ${result.blobsMounted} mounted, ${formatBytes(result.bytes)}, ${(result.durationMs / 1000).toFixed(1)} s)`;
  process.stdout.write(`${line}\n${result.notes.map((n) => `  note: ${n}\n`).join('')}`);
}

/** The one `skiff:` line on stderr for an image that failed (with or without --json). */
export function printMirrorFailure(result: MirrorResult): void {
  if (!result.error) return;
  const { message, context } = result.error;
  const layer =
    context.digest && !message.includes(context.digest) ? ` (${shortDigest(context.digest)})` : '';
  process.stderr.write(
    `skiff: failed ${result.source} -> ${result.destination}: ${message.replace(/\s*\n\s*/g, '; ')}${layer}\n`,
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

/** One bar per image in flight, counting bytes written to the destination; nothing off a TTY. */
export async function mirrorProgressBars(enabled: boolean): Promise<MirrorProgress & TerminalOutput> {
  const multi = enabled
    ? await byteBars(' [{bar}] {value_formatted}/{total_formatted} {label}', 25)
    : undefined;
  if (!multi)
    return { imageStart() {}, expect() {}, bytes() {}, imageDone() {}, say: sayOnStderr, stop() {} };
  const bars = new Map<number, cliProgressModule.SingleBar>();
  return {
    say: (line) => multi.log(`${line}\n`),
    imageStart(id, label) {
      bars.set(id, multi.create(1, 0, { label: label.length > 80 ? `…${label.slice(-79)}` : label }));
    },
    expect(id, bytes) {
      const bar = bars.get(id);
      if (bar && bytes > 0) bar.setTotal(bar.getTotal() + bytes);
    },
    bytes(id, bytes) {
      bars.get(id)?.increment(bytes);
    },
    imageDone(id) {
      const bar = bars.get(id);
      if (bar) {
        bar.update(bar.getTotal());
        bar.stop();
      }
    },
    stop() {
      multi.stop();
    },
  };
}
