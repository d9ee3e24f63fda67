// One multi-arch index listed under several tags of one destination repository in one
// `mirror --file` run: the items share its child manifests and blobs through the run's ledger, and
// none may PUT a manifest while another item is still writing what it references (or the same
// manifest): Debian's docker-registry then answers 400 MANIFEST_BLOB_UNKNOWN now and then.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import { pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';

let src: RunningRegistry;
let dst: RunningRegistry;
/** The destination, through a proxy that records its requests. */
let B: CountingProxy;
let work: string;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  cleanups.push(
    () => src.stop(),
    () => dst.stop(),
  );
  B = await startCountingProxy(dst.host);
  cleanups.push(() => B.stop());
  const temp = tempDir('skiff-index-race-');
  work = temp.dir;
  cleanups.push(temp.cleanup);
  await pushFixture(src.host, 'multi', 'race/multi:latest');
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const TAGS = ['a', 'b', 'c', 'd'];

async function mirrorUnderTags(repository: string) {
  const lines = ['images:'];
  for (const tag of TAGS)
    lines.push(
      `  - source: docker://${src.host}/race/multi:latest`,
      '    all: true',
      `    destination: docker://${B.host}/${repository}:${tag}`,
    );
  const list = path.join(work, `${repository.replaceAll('/', '-')}.yaml`);
  fs.writeFileSync(list, `${lines.join('\n')}\n`);
  return runCli(['mirror', '--file', list, '--jobs', '4', '--no-referrers']);
}

describe('mirror --file, one index under several tags of one repository', () => {
  it('PUTs each platform manifest once and the index once per tag', async () => {
    B.reset();
    const result = await mirrorUnderTags('once/multi');
    expect(result.code, result.stderr).toBe(0);
    const puts = B.manifestPuts().map((r) => r.path.replace('/v2/once/multi/manifests/', ''));
    const children = puts.filter((ref) => ref.startsWith('sha256:'));
    expect(children.length).toBeGreaterThan(0);
    expect(new Set(children).size).toBe(children.length);
    expect(puts.filter((ref) => !ref.startsWith('sha256:')).sort()).toEqual(TAGS);
  });

  it('writes every tag, run after run into fresh repositories', async () => {
    const failures: string[] = [];
    for (let run = 0; run < 6; run++) {
      const result = await mirrorUnderTags(`race${run}/multi`);
      if (result.code !== 0) failures.push(`run ${run}: ${result.stderr}`);
    }
    expect(failures).toEqual([]);
  });
});
