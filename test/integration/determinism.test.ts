// Issue 4 and the stacker seed: the same facts give the same plan, byte for byte, and the same
// platform pick, every time, in fresh processes.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { FIXTURES } from '../harness/registry.js';

const registry = inject('registry');
const RUNS = 5;
let work: { dir: string; cleanup: () => void };
beforeAll(() => {
  work = tempDir('skiff-determinism-');
});
afterAll(() => work.cleanup());

/** Runs the same command in RUNS fresh processes at once; returns the outputs, durations removed. */
async function repeated(args: string[], store: string): Promise<string[]> {
  const results = await Promise.all(Array.from({ length: RUNS }, () => runCli(args, { SKIFF_STORE: store })));
  return results.map((r) => {
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.replace(/"durationMs":\d+/g, '"durationMs":0');
  });
}

describe('determinism across fresh processes', () => {
  it('picks the same platform from an index every time', async () => {
    const store = path.join(work.dir, 'platforms');
    for (const platform of ['linux/arm', 'linux/arm64', 'linux/amd64']) {
      const outputs = await repeated(
        ['pull', '--dry-run', '--json', '--platform', platform, `${registry}/fixtures/multi:latest`],
        store,
      );
      expect(new Set(outputs).size).toBe(1);
    }
  });

  it('gives the same plan, byte for byte, for every kind of image and mode', async () => {
    const store = path.join(work.dir, 'plans');
    expect((await runCli(['pull', `${registry}/fixtures/gzip:latest`], { SKIFF_STORE: store })).code).toBe(0);
    const refs = [
      `${registry}/fixtures/zstd:latest`,
      `oci:${FIXTURES}/chunked:latest`,
      `oci:${FIXTURES}/chunked-legacy:latest`,
      `oci:${FIXTURES}/estargz:latest`,
      `dir:${FIXTURES}/schema1`,
    ];
    for (const ref of refs) {
      for (const mode of ['auto', 'full']) {
        const outputs = await repeated(['pull', '--dry-run', '--json', '--mode', mode, ref], store);
        expect(new Set(outputs).size, `${ref} --mode ${mode}`).toBe(1);
      }
    }
  });
});
