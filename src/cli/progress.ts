/**
 * Per-layer progress bars on a TTY (stderr); nothing on a pipe, so scripts get clean output.
 * Bars count real bytes received from the source.
 */
import type cliProgressModule from 'cli-progress';
import { shortDigest } from '../errors/index.js';
import type { PullProgress } from '../pull/progress.js';
import { formatBytes } from '../pull/report.js';

export async function terminalProgress(enabled: boolean): Promise<PullProgress & { stop(): void }> {
  if (!enabled || !process.stderr.isTTY)
    return { layerStart() {}, layerBytes() {}, layerDone() {}, stop() {} };
  // Loaded only for a terminal: a pipe (scripts, CI) never pays for it.
  const cliProgress: typeof cliProgressModule = (await import('cli-progress')).default;
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: ' {digest} {method} [{bar}] {value_formatted}/{total_formatted}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      formatValue: (value: number, _options: unknown, type: string) =>
        type === 'value' || type === 'total' ? formatBytes(value) : String(value),
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgressModule.SingleBar>();
  return {
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
