/**
 * The order a mirror run starts its items in (issue 15, many images in one run).
 */
import { formatReference, parseReference } from '../reference/index.js';
import type { MirrorJob } from './list.js';

/**
 * Runs every job, `jobs` at once, results in list order. The next job to start is the first in the
 * list whose source repository has no job running, else the first: tags of one repository usually
 * share their large layers, and started side by side all but one would wait on the ledger for the
 * shared blob while holding a job's place, so a list grouped by repository would copy one
 * repository's layers at a time (issue 15, bench/mirror-many: 30 tags of three repositories).
 */
export async function eachSpread<T>(
  list: MirrorJob[],
  jobs: number,
  run: (job: MirrorJob, id: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(list.length);
  // Waiting jobs by repository, each queue in list order; a Map iterates in first-seen order.
  const waiting = new Map<string, number[]>();
  list.forEach((job, id) => {
    const key = repositoryOf(job.source);
    const queue = waiting.get(key);
    if (queue) queue.push(id);
    else waiting.set(key, [id]);
  });
  const running = new Map<string, number>();
  const next = (): [string, number] | undefined => {
    let best: [string, number] | undefined;
    let idle: [string, number] | undefined;
    for (const [key, queue] of waiting) {
      const head = queue[0]!;
      if (!best || head < best[1]) best = [key, head];
      if (!running.get(key) && (!idle || head < idle[1])) idle = [key, head];
    }
    return idle ?? best;
  };
  const worker = async () => {
    for (let picked = next(); picked; picked = next()) {
      const [key, id] = picked;
      const queue = waiting.get(key)!;
      queue.shift();
      if (queue.length === 0) waiting.delete(key);
      running.set(key, (running.get(key) ?? 0) + 1);
      try {
        results[id] = await run(list[id]!, id);
      } finally {
        running.set(key, running.get(key)! - 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, list.length) }, worker));
  return results;
}

/** The repository a source names (registry and path, or its local path), tag and digest left off. */
function repositoryOf(source: string): string {
  try {
    const ref = parseReference(source);
    if (ref.transport === 'docker') return `${ref.endpoint}/${ref.repository}`;
    if (ref.transport === 'oci') return `oci:${ref.dir}`;
    return formatReference(ref);
  } catch {
    return source;
  }
}
