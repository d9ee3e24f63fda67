/**
 * Per-layer progress bars on a TTY (stderr); nothing on a pipe, so scripts get clean output.
 * Bars count real bytes received from the source.
 */
import type cliProgressModule from 'cli-progress';
import { shortDigest } from '../errors/index.js';
import type { PullProgress } from '../pull/progress.js';
import { formatBytes } from '../pull/report.js';

/**
 * A set of byte-counting bars on stderr, or undefined off a TTY. cli-progress is loaded only for
 * a terminal: a pipe (scripts, CI) never pays for it.
 */
export async function byteBars(
  format: string,
  barsize: number,
): Promise<cliProgressModule.MultiBar | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const cliProgress: typeof cliProgressModule = (await import('cli-progress')).default;
  return new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format,
      barsize,
      hideCursor: true,
      clearOnComplete: false,
      formatValue: (value: number, _options: unknown, type: string) =>
        type === 'value' || type === 'total' ? formatBytes(value) : String(value),
    },
    cliProgress.Presets.shades_classic,
  );
}

/** Writes a line on stderr: where notices go when no progress bars are drawn. */
export function sayOnStderr(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Progress bars, and a way to print a line on stderr without tearing them. */
export interface TerminalOutput {
  say(line: string): void;
  stop(): void;
}

export async function terminalProgress(enabled: boolean): Promise<PullProgress & TerminalOutput> {
  const multi = enabled
    ? await byteBars(' {digest} {method} [{bar}] {value_formatted}/{total_formatted}', 30)
    : undefined;
  if (!multi) return { layerStart() {}, layerBytes() {}, layerDone() {}, say: sayOnStderr, stop() {} };
  const bars = new Map<number, cliProgressModule.SingleBar>();
  return {
    say: (line) => multi.log(`${line}\n`),
    layerStart(index, digest, method, total) {
      const payload = { digest: shortDigest(digest), method: method.padEnd(7) };
      const existing = bars.get(index);
      if (existing) {
        existing.setTotal(Math.max(total, 1));
        existing.update(0, payload);
        return;
      }
      bars.set(index, multi.create(Math.max(total, 1), 0, payload));
    },
    layerBytes(index, bytes) {
      const bar = bars.get(index);
      if (!bar) return;
      if (bar.getProgress() >= 1) bar.setTotal(bar.getTotal() + bytes);
      bar.increment(bytes);
    },
    layerDone(index, ok) {
      const bar = bars.get(index);
      if (bar && ok) bar.update(bar.getTotal());
    },
    stop() {
      multi.stop();
    },
  };
}
