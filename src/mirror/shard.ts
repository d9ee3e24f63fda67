/**
 * Deterministic sharding of a mirror list (`--shard I/N`, I from 1 to N).
 *
 * Rule: an expanded item (one source image and its destination) belongs to shard
 * `1 + (H mod N)`, where H is the first 48 bits of sha256(`SOURCE DESTINATION`), both written in
 * their canonical form. The shard depends on the item alone, never on its position or on the other
 * items, so N machines that each expand the list (even if a tag was pushed in between) take every
 * item exactly once without talking to each other, and adding an item moves no other item.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors/index.js';

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

/**
 * `--shard I/N`, or `--shard auto`: the share a job runner gave this process (shardFromEnvironment).
 * `count` is `--shard-count` for runners that export an index but no count (Kubernetes).
 */
export function resolveShard(text: string, env: NodeJS.ProcessEnv, count?: number): Shard {
  return text.trim() === 'auto' ? shardFromEnvironment(env, count) : parseShard(text);
}

export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index < 1 || index > count)
    throw new UsageError(`--shard ${text}: expected I/N with 1 <= I <= N, e.g. 2/4`);
  return { index, count };
}

export function shardKey(source: string, destination: string): string {
  return `${source} ${destination}`;
}

/** The 1-based shard an item key belongs to. */
export function shardOf(key: string, count: number): number {
  const hash = createHash('sha256').update(key).digest();
  return 1 + (hash.readUIntBE(0, 6) % count);
}

export function inShard(key: string, shard: Shard): boolean {
  return shardOf(key, shard.count) === shard.index;
}

export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/**
 * The variables job runners set for the N copies of one job, in the order they are consulted. The
 * first whose index variable is set wins; a 0-based index is turned into shard index + 1.
 *  - SKIFF_SHARD_INDEX (0-based) with SKIFF_SHARD_COUNT: set them from any runner, e.g. GitHub
 *    Actions `${{ strategy.job-index }}` and `${{ strategy.job-total }}` (GitHub exports neither).
 *  - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX (0-based); the completion count is not exported,
 *    so it comes from --shard-count or SKIFF_SHARD_COUNT.
 *  - GitLab CI `parallel:`: CI_NODE_INDEX (1-based) and CI_NODE_TOTAL.
 */
const RUNNERS = [
  { name: 'SKIFF_SHARD_INDEX', index: 'SKIFF_SHARD_INDEX', base: 0, count: 'SKIFF_SHARD_COUNT' },
  { name: 'Kubernetes', index: 'JOB_COMPLETION_INDEX', base: 0, count: 'SKIFF_SHARD_COUNT' },
  { name: 'GitLab CI', index: 'CI_NODE_INDEX', base: 1, count: 'CI_NODE_TOTAL' },
] as const;

export function shardFromEnvironment(env: NodeJS.ProcessEnv, countFlag?: number): Shard {
  const runner = RUNNERS.find((r) => env[r.index] !== undefined && env[r.index] !== '');
  if (!runner)
    throw new UsageError(
      `--shard auto: no shard index in the environment (looked for ${RUNNERS.map((r) => r.index).join(', ')}); give --shard I/N`,
    );
  const rawIndex = env[runner.index] ?? '';
  const rawCount = countFlag !== undefined ? String(countFlag) : (env[runner.count] ?? '');
  if (!/^\d+$/.test(rawIndex))
    throw new UsageError(`--shard auto: ${runner.index}=${rawIndex} is not a number`);
  if (!/^\d+$/.test(rawCount))
    throw new UsageError(
      `--shard auto: ${runner.name} gives the index (${runner.index}=${rawIndex}) but no shard count: give --shard-count N or ${runner.count}`,
    );
  const index = Number(rawIndex) + 1 - runner.base;
  const count = Number(rawCount);
  if (count < 1 || index < 1 || index > count)
    throw new UsageError(
      `--shard auto: ${runner.index}=${rawIndex} is outside ${count} shard(s) (${runner.name} counts from ${runner.base})`,
    );
  return { index, count };
}
