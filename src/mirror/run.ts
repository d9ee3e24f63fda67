/** Runs many mirror jobs, a bounded number at once; one failed image never stops the others. */
import pLimit from 'p-limit';
import { type CopyOptions, copyImage } from '../copy/image-copy.js';
import { BlobLedger } from '../copy/ledger.js';
import type { MirrorJob } from './list.js';
import { emptyCounters, type MirrorResult, type MirrorSummary, summarize } from './result.js';

export interface RunOptions extends Omit<CopyOptions, 'all' | 'platform' | 'id'> {
  /** Images copied at once. */
  jobs: number;
  /** Called as each image finishes (its JSON line goes out then, not at the end). */
  onResult?: ((result: MirrorResult) => void) | undefined;
  shard?: string | undefined;
}

export async function runMirror(
  jobs: MirrorJob[],
  options: RunOptions,
): Promise<{ results: MirrorResult[]; summary: MirrorSummary }> {
  const started = performance.now();
  const limit = pLimit(Math.max(1, options.jobs));
  // One record for the run: a blob shared by several items crosses the wire once.
  const ledger = options.ledger ?? new BlobLedger();
  const results = await Promise.all(
    jobs.map((job, id) =>
      limit(async () => {
        const result = job.error
          ? failedExpansion(job)
          : await copyImage(job.source, job.destination, {
              ...options,
              all: job.all,
              platform: job.platform,
              id,
              ledger,
            });
        options.onResult?.(result);
        return result;
      }),
    ),
  );
  return { results, summary: summarize(results, Math.round(performance.now() - started), options.shard) };
}

function failedExpansion(job: MirrorJob): MirrorResult {
  return {
    source: job.source,
    destination: job.destination,
    upToDate: false,
    durationMs: 0,
    notes: [],
    ...emptyCounters(),
    error: job.error,
  };
}
