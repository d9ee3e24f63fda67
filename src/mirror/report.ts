/**
 * `skiff mirror-report`: merges the results files of the shards of one list into one account.
 * Pure: documents in, report out.
 *
 * The account is complete when every item of the list was mirrored (or failed) by exactly the shard
 * that owns it (shard.ts's rule) and every shard 1..N left a file. The exit code says which:
 *  - 1 when the files do not account for every item exactly once (a shard's file missing, an item no
 *    shard took, an item taken twice, shards that disagree on N);
 *  - otherwise `mirror`'s own rule: 0, or the code of the first failed item in list order.
 */
import { ExitCode } from '../errors/index.js';
import { emptyCounters, type MirrorCounters } from './result.js';
import type { ResultsFile, ResultsItem } from './results-file.js';
import { shardOf } from './shard.js';

export interface NamedResults {
  /** Where the document came from, for messages. */
  name: string;
  document: ResultsFile;
}

export interface ReportItem {
  source: string;
  destination: string;
  shard: number;
  result: ResultsItem;
}

export interface Unaccounted {
  key: string;
  /** The shard the item belongs to. */
  shard: number;
  why: string;
}

export interface MergedReport {
  shardCount: number;
  /** Problems with the set of files itself (missing shards, disagreeing N): the account is incomplete. */
  problems: string[];
  /** Worth saying but not wrong: a shard run again, whose later file replaced the earlier one. */
  notes: string[];
  missingShards: number[];
  /** Every item with a result, in list order. */
  items: ReportItem[];
  unaccounted: Unaccounted[];
  summary: MirrorCounters & {
    items: number;
    succeeded: number;
    failed: number;
    upToDate: number;
    unaccounted: number;
  };
  exitCode: number;
}

export function mergeResults(files: readonly NamedResults[]): MergedReport {
  const problems: string[] = [];
  const shardCount = agreedShardCount(files, problems);
  const notes: string[] = [];
  const byShard = newestPerShard(files, shardCount, notes);
  const missingShards = range(1, shardCount).filter((i) => !byShard.has(i));
  for (const i of missingShards) problems.push(`shard ${i}/${shardCount} left no results file`);

  const items: ReportItem[] = [];
  const unaccounted: Unaccounted[] = [];
  const shards = [...byShard.entries()].sort(([a], [b]) => a - b);
  for (const key of unionOfLists(shards.map(([, f]) => f.document))) {
    const owner = shardOf(key, shardCount);
    const takers = shards.flatMap(([index, f]) => {
      const result = resultFor(f.document, key);
      return result ? [{ index, result }] : [];
    });
    const [taker, ...others] = takers;
    if (taker && others.length === 0)
      items.push({
        source: taker.result.source,
        destination: taker.result.destination,
        shard: taker.index,
        result: taker.result,
      });
    else if (taker) {
      const names = takers.map((t) => `${t.index}/${shardCount}`).join(' and ');
      unaccounted.push({ key, shard: owner, why: `mirrored by shards ${names}` });
    } else
      unaccounted.push({ key, shard: owner, why: whyMissing(byShard.get(owner), key, owner, shardCount) });
  }
  return {
    shardCount,
    problems,
    notes,
    missingShards,
    items,
    unaccounted,
    summary: summarizeItems(items, unaccounted.length),
    exitCode: exitCodeOf(items, problems.length + unaccounted.length > 0),
  };
}

/** Every file must split the list the same way; the most common N wins and the others are named. */
function agreedShardCount(files: readonly NamedResults[], problems: string[]): number {
  const counts = files.map((f) => shardOf_(f.document).count);
  const votes = new Map<number, number>();
  for (const c of counts) votes.set(c, (votes.get(c) ?? 0) + 1);
  const [count] = [...votes.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [1];
  files.forEach((f, i) => {
    if (counts[i] !== count)
      problems.push(
        `${f.name} is shard ${f.document.shard} of ${counts[i]}, the others of ${count}: ignored`,
      );
  });
  return count;
}

/** A shard run again after a failure leaves a second file: the later run's account is the one kept. */
function newestPerShard(
  files: readonly NamedResults[],
  count: number,
  notes: string[],
): Map<number, NamedResults> {
  const kept = new Map<number, NamedResults>();
  for (const file of files) {
    const shard = shardOf_(file.document);
    if (shard.count !== count) continue;
    const other = kept.get(shard.index);
    if (!other) {
      kept.set(shard.index, file);
      continue;
    }
    const [older, newer] =
      other.document.finishedAt <= file.document.finishedAt ? [other, file] : [file, other];
    notes.push(`shard ${shard.index}/${count}: ${newer.name} supersedes ${older.name} (a later run)`);
    kept.set(shard.index, newer);
  }
  return kept;
}

function shardOf_(document: ResultsFile): { index: number; count: number } {
  const [index, count] = (document.shard ?? '1/1').split('/').map(Number);
  return { index: index ?? 1, count: count ?? 1 };
}

/** The items of every expansion, in the order the first file lists them, then any others. */
function unionOfLists(documents: readonly ResultsFile[]): string[] {
  const seen = new Set<string>();
  for (const document of documents) for (const key of document.list) seen.add(key);
  return [...seen];
}

function resultFor(document: ResultsFile, key: string): ResultsItem | undefined {
  return document.items.find((item) => `${item.source} ${item.destination}` === key);
}

function whyMissing(file: NamedResults | undefined, key: string, owner: number, count: number): string {
  if (!file) return `its shard ${owner}/${count} left no results file`;
  return file.document.list.includes(key)
    ? `shard ${owner}/${count} (${file.name}) lists it but has no result for it`
    : `shard ${owner}/${count} (${file.name}) expanded a list without it (did the source's tags change between shards?)`;
}

function summarizeItems(items: readonly ReportItem[], unaccounted: number): MergedReport['summary'] {
  const counters = emptyCounters();
  for (const { result } of items) {
    counters.blobsCopied += result.blobsCopied;
    counters.blobsSkipped += result.blobsSkipped;
    counters.blobsMounted += result.blobsMounted;
    counters.manifestsWritten += result.manifestsWritten;
    counters.bytes += result.bytes;
  }
  const failed = items.filter((i) => i.result.error !== null).length;
  return {
    items: items.length + unaccounted,
    succeeded: items.length - failed,
    failed,
    upToDate: items.filter((i) => i.result.upToDate).length,
    unaccounted,
    ...counters,
  };
}

function exitCodeOf(items: readonly ReportItem[], incomplete: boolean): number {
  if (incomplete) return ExitCode.usage;
  return items.find((i) => i.result.error)?.result.error?.exitCode ?? ExitCode.ok;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}
