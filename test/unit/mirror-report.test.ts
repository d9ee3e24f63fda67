import { describe, expect, it } from 'vitest';
import { mergeResults, type NamedResults } from '../../src/mirror/report.js';
import type { ResultsFile } from '../../src/mirror/results-file.js';
import { shardFromEnvironment, shardKey, shardOf } from '../../src/mirror/shard.js';

describe('shardFromEnvironment (--shard auto)', () => {
  it('Kubernetes: 0-based JOB_COMPLETION_INDEX, the count from the flag or SKIFF_SHARD_COUNT', () => {
    expect(shardFromEnvironment({ JOB_COMPLETION_INDEX: '0' }, 4)).toEqual({ index: 1, count: 4 });
    expect(shardFromEnvironment({ JOB_COMPLETION_INDEX: '3', SKIFF_SHARD_COUNT: '4' })).toEqual({
      index: 4,
      count: 4,
    });
  });

  it('GitLab CI parallel: 1-based CI_NODE_INDEX and CI_NODE_TOTAL', () => {
    expect(shardFromEnvironment({ CI_NODE_INDEX: '2', CI_NODE_TOTAL: '5' })).toEqual({ index: 2, count: 5 });
  });

  it('SKIFF_SHARD_INDEX (0-based, e.g. GitHub strategy.job-index) comes first', () => {
    const env = { SKIFF_SHARD_INDEX: '0', SKIFF_SHARD_COUNT: '2', CI_NODE_INDEX: '2', CI_NODE_TOTAL: '2' };
    expect(shardFromEnvironment(env)).toEqual({ index: 1, count: 2 });
  });

  it('refuses a missing count, an index out of range, and an environment without a runner', () => {
    expect(() => shardFromEnvironment({ JOB_COMPLETION_INDEX: '1' })).toThrow(
      /no shard count: give --shard-count/,
    );
    expect(() => shardFromEnvironment({ JOB_COMPLETION_INDEX: '4' }, 4)).toThrow(/outside 4 shard\(s\)/);
    expect(() => shardFromEnvironment({ CI_NODE_INDEX: '0', CI_NODE_TOTAL: '3' })).toThrow(/counts from 1/);
    expect(() => shardFromEnvironment({ JOB_COMPLETION_INDEX: 'x' }, 2)).toThrow(/is not a number/);
    expect(() => shardFromEnvironment({})).toThrow(/no shard index in the environment/);
  });
});

// ---- mergeResults ------------------------------------------------------------------------------

const KEYS = Array.from({ length: 12 }, (_, i) => shardKey(`docker://a/img:${i}`, `docker://b/img:${i}`));
const N = 3;

function item(key: string, error: { exitCode: number; message: string } | null = null) {
  const [source = '', destination = ''] = key.split(' ');
  return {
    position: KEYS.indexOf(key),
    source,
    destination,
    upToDate: false,
    blobsCopied: 2,
    blobsSkipped: 0,
    blobsMounted: 0,
    manifestsWritten: 1,
    bytes: 100,
    error,
  };
}

function shardFile(
  index: number,
  options: { list?: string[]; finishedAt?: string; count?: number; failing?: string } = {},
): NamedResults {
  const list = options.list ?? KEYS;
  const count = options.count ?? N;
  const items = list
    .filter((key) => shardOf(key, count) === index)
    .map((key) => item(key, key === options.failing ? { exitCode: 5, message: 'network' } : null));
  const document: ResultsFile = {
    type: 'skiff-mirror-results',
    version: 1,
    shard: `${index}/${count}`,
    list,
    items,
    summary: { exitCode: 0 },
    finishedAt: options.finishedAt ?? '2026-12-02T10:00:00.000Z',
  };
  return { name: `shard-${index}.json`, document };
}

describe('mergeResults', () => {
  it('all shards: every item once in list order, counters summed, exit 0', () => {
    const report = mergeResults([shardFile(3), shardFile(1), shardFile(2)]);
    expect(report.items.map((i) => shardKey(i.source, i.destination))).toEqual(KEYS);
    expect(report.unaccounted).toEqual([]);
    expect(report.problems).toEqual([]);
    expect(report.summary).toMatchObject({
      items: 12,
      succeeded: 12,
      failed: 0,
      blobsCopied: 24,
      bytes: 1200,
    });
    expect(report.exitCode).toBe(0);
  });

  it('a missing shard: its items are unaccounted for and the exit code is 1', () => {
    const report = mergeResults([shardFile(1), shardFile(3)]);
    expect(report.missingShards).toEqual([2]);
    expect(report.unaccounted.map((u) => u.key)).toEqual(KEYS.filter((k) => shardOf(k, N) === 2));
    expect(report.unaccounted[0]?.why).toMatch(/its shard 2\/3 left no results file/);
    expect(report.exitCode).toBe(1);
  });

  it('a failed item: mirror-rule exit code of the first failure in list order', () => {
    const failing = KEYS.find((k) => shardOf(k, N) === 2)!;
    const report = mergeResults([shardFile(1), shardFile(2, { failing }), shardFile(3)]);
    expect(report.summary.failed).toBe(1);
    expect(report.exitCode).toBe(5);
  });

  it('a shard run twice: the later run is kept and the supersession said', () => {
    const failing = KEYS.find((k) => shardOf(k, N) === 2)!;
    const first = { ...shardFile(2, { failing, finishedAt: '2026-12-02T10:00:00.000Z' }), name: 'old.json' };
    const second = { ...shardFile(2, { finishedAt: '2026-12-02T11:00:00.000Z' }), name: 'new.json' };
    const report = mergeResults([shardFile(1), second, first, shardFile(3)]);
    expect(report.notes).toEqual(['shard 2/3: new.json supersedes old.json (a later run)']);
    expect(report.problems).toEqual([]);
    expect(report.summary.failed).toBe(0);
    expect(report.exitCode).toBe(0);
  });

  it('shards that expanded different lists: the item only some saw is named, not silently dropped', () => {
    const extra = shardKey('docker://a/img:new', 'docker://b/img:new');
    const owner = shardOf(extra, N);
    const other = owner === 1 ? 2 : 1;
    const files = [1, 2, 3].map((i) => shardFile(i, i === other ? { list: [...KEYS, extra] } : {}));
    const report = mergeResults(files);
    expect(report.unaccounted).toHaveLength(1);
    expect(report.unaccounted[0]).toMatchObject({ key: extra, shard: owner });
    expect(report.unaccounted[0]?.why).toMatch(/expanded a list without it/);
    expect(report.exitCode).toBe(1);
  });

  it('a file of another shard count is ignored and named', () => {
    const report = mergeResults([shardFile(1), shardFile(2), shardFile(3), shardFile(1, { count: 2 })]);
    expect(report.problems).toEqual(['shard-1.json is shard 1/2 of 2, the others of 3: ignored']);
    expect(report.unaccounted).toEqual([]);
  });
});
