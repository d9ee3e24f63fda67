// One mirror list spread over N shard processes running at once against real registries, as a
// Kubernetes Indexed Job or a CI matrix runs it: every item mirrored by exactly one shard, a shard
// killed midway and run again finishes without copying again what it had copied, and
// `mirror-report` merges the shards' --results files into one account and exit code.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardKey, shardOf } from '../../src/mirror/shard.js';
import { runCli, tempDir } from '../harness/cli.js';
import { pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');
const SHARDS = 3;
const REPOS = ['gzip', 'zstd', 'plain', 'v2s2'];
const TAGS = ['1', '2', '3'];

let src: RunningRegistry;
let dst: RunningRegistry;
let work: string;
let list: string;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  cleanups.push(
    () => src.stop(),
    () => dst.stop(),
  );
  const temp = tempDir('skiff-shards-');
  work = temp.dir;
  cleanups.push(temp.cleanup);
  // Repositories in parallel, the tags of one in turn: Debian's registry can answer 500 to two
  // pushes of the same blobs into one repository at once.
  await Promise.all(
    REPOS.map(async (repo) => {
      for (const tag of TAGS) await pushFixture(src.host, repo, `app/${repo}:${tag}`);
    }),
  );
  list = path.join(work, 'list.yaml');
  fs.writeFileSync(
    list,
    [
      'images:',
      ...REPOS.flatMap((repo) => [
        `  - source: docker://${src.host}/app/${repo}`,
        `    tags: [${TAGS.map((t) => `"${t}"`).join(', ')}]`,
        `    destination: docker://${dst.host}/mirrored/${repo}`,
      ]),
    ].join('\n'),
  );
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** The expanded list's keys, as skiff expands it (tags listed explicitly, so no registry call). */
function itemKeys(): string[] {
  return REPOS.flatMap((repo) =>
    TAGS.map((tag) =>
      shardKey(`docker://${src.host}/app/${repo}:${tag}`, `docker://${dst.host}/mirrored/${repo}:${tag}`),
    ),
  );
}

const resultsFile = (shard: number) => path.join(work, `shard-${shard}.json`);

/** `--shard auto` with the variables a Kubernetes Indexed Job sets (JOB_COMPLETION_INDEX is 0-based). */
function shardEnv(shard: number): Record<string, string> {
  return { JOB_COMPLETION_INDEX: String(shard - 1), SKIFF_SHARD_COUNT: String(SHARDS) };
}

function shardArgs(shard: number): string[] {
  return ['mirror', '--file', list, '--shard', 'auto', '--jobs', '1', '--results', resultsFile(shard)];
}

/** Runs a shard and SIGKILLs it as soon as it reports its first finished item. */
function runShardKilledAfterFirstItem(shard: number): Promise<{ firstLine: string; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...shardArgs(shard), '--progress', 'none'], {
      env: { ...process.env, NO_COLOR: '1', ...shardEnv(shard) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let firstLine = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!firstLine && stdout.includes('\n')) {
        firstLine = stdout.slice(0, stdout.indexOf('\n'));
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve({ firstLine, signal }));
  });
}

async function report(...files: string[]) {
  const result = await runCli(['mirror-report', '--json', ...files]);
  return { ...result, json: JSON.parse(result.stdout.trim().split('\n').at(-1)!) };
}

describe('mirror --shard auto over N processes at once, and mirror-report', () => {
  it('every item exactly once, a killed shard re-run without copying again, one merged account', async () => {
    const keys = itemKeys();
    const owned = (shard: number) => keys.filter((key) => shardOf(key, SHARDS) === shard);
    // The shard with the most items is the one killed: it has items left when its first is done.
    const victim = [1, 2, 3].sort((a, b) => owned(b).length - owned(a).length)[0]!;
    expect(owned(victim).length).toBeGreaterThanOrEqual(2);

    const runs = await Promise.all(
      [1, 2, 3].map((shard) =>
        shard === victim ? runShardKilledAfterFirstItem(shard) : runCli(shardArgs(shard), shardEnv(shard)),
      ),
    );
    const killed = runs[victim - 1] as { firstLine: string; signal: string | null };
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.firstLine).toMatch(/^mirrored docker:\/\//);
    expect(fs.existsSync(resultsFile(victim)), 'a killed shard leaves no results file').toBe(false);
    for (const shard of [1, 2, 3].filter((s) => s !== victim)) {
      const run = runs[shard - 1] as { code: number | null; stderr: string };
      expect(run.code, `shard ${shard}: ${run.stderr}`).toBe(0);
    }

    const survivors = [1, 2, 3].filter((s) => s !== victim).map(resultsFile);
    const incomplete = await report(...survivors);
    expect(incomplete.code).toBe(1);
    expect(incomplete.json.missingShards).toEqual([victim]);
    expect(incomplete.json.unaccounted.map((u: { key: string }) => u.key).sort()).toEqual(
      owned(victim).sort(),
    );
    expect(incomplete.stderr).toMatch(/^skiff: mirror-report: the results do not account for every item/m);

    const rerun = await runCli(shardArgs(victim), shardEnv(victim));
    expect(rerun.code, rerun.stderr).toBe(0);
    const rerunResults = JSON.parse(fs.readFileSync(resultsFile(victim), 'utf8'));
    const doneBeforeKill = killed.firstLine.split(' ')[1]!;
    const again = rerunResults.items.find((i: { source: string }) => i.source === doneBeforeKill);
    expect(again, `${doneBeforeKill} in the re-run's results`).toMatchObject({
      upToDate: true,
      blobsCopied: 0,
    });

    const merged = await report(...[1, 2, 3].map(resultsFile));
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.json.unaccounted).toEqual([]);
    expect(merged.json.problems).toEqual([]);
    expect(merged.json.summary).toMatchObject({ items: keys.length, failed: 0, unaccounted: 0 });
    const mirrored = merged.json.items.map((i: { source: string; destination: string }) =>
      shardKey(i.source, i.destination),
    );
    expect(mirrored).toEqual(keys);
    for (const item of merged.json.items as Array<{ source: string; shard: number }>)
      expect(item.shard).toBe(shardOf(keys.find((k) => k.startsWith(`${item.source} `))!, SHARDS));

    for (const repo of REPOS) {
      const tags = (await (await fetch(`http://${dst.host}/v2/mirrored/${repo}/tags/list`)).json()) as {
        tags: string[];
      };
      expect(tags.tags.sort()).toEqual(TAGS);
    }
  });

  it('--shard auto without a runner variable is a usage error naming what it looked for', async () => {
    const env = { JOB_COMPLETION_INDEX: '', CI_NODE_INDEX: '', SKIFF_SHARD_INDEX: '' };
    const result = await runCli(['mirror', '--file', list, '--shard', 'auto'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^skiff: .*--shard auto: no shard index in the environment \(looked for SKIFF_SHARD_INDEX, JOB_COMPLETION_INDEX, CI_NODE_INDEX\)/m,
    );
  });
});
