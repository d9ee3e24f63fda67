#!/usr/bin/env node
// Issue 11's benchmark: what a command costs before it does anything, and a whole partial pull:
// `skiff --version`, `skiff images` on an empty store, `skiff mirror` of one image already
// mirrored, `skiff pull` of an image already stored, and the partial pull of v2 of
// bench/partial's image (v1 already stored). With BENCH_BEFORE=DIR (a built checkout of another
// skiff) and BENCH_BEFORE_NODE=NODE (the Node it runs on), both are measured in the same run,
// interleaved, so that the machine's drift hits them alike. Medians of BENCH_RUNS (default 11
// for the start-up commands, a third of that for the pull) of wall and CPU (user + system)
// seconds, after one unmeasured run each (which fills skiff's compile cache, in a temporary
// XDG_CACHE_HOME). Not a test: `node bench/startup.mjs`.
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../scripts/lib/registry.mjs';
import { fmt, median, pushPartialImages, SKIFF, tempDir, timed, writeResults } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 11);
const PULL_RUNS = Math.max(1, Math.round(RUNS / 3));
const variants = [{ name: 'this checkout', node: process.execPath, bin: SKIFF }];
if (process.env.BENCH_BEFORE) {
  variants.unshift({
    name: 'before',
    node: process.env.BENCH_BEFORE_NODE ?? process.execPath,
    bin: path.join(process.env.BENCH_BEFORE, 'bin/run.js'),
  });
}
for (const v of variants) v.version = timed(v.node, ['--version']).stdout.trim();

const work = tempDir('skiff-bench-startup-');
const env = { XDG_CACHE_HOME: path.join(work, 'cache') };
const registry = await startRegistry();
try {
  pushPartialImages(work, registry.host);
  const ref = (version) => `${registry.host}/bench/app:${version}`;
  let stores = 0;
  const emptyStore = () => {
    const dir = path.join(work, `store-${stores++}`);
    fs.mkdirSync(dir);
    return dir;
  };
  // `images` never creates a store: each variant gets one, made (unmeasured) by a dry run.
  const storeWithNothing = new Map(
    variants.map((v) => {
      const store = emptyStore();
      timed(v.node, [v.bin, 'pull', '--dry-run', ref('v1'), '--store', store], env);
      return [v.name, store];
    }),
  );
  const storeWithV1 = new Map(
    variants.map((v) => {
      const store = emptyStore();
      timed(v.node, [v.bin, 'pull', ref('v1'), '--store', store], env);
      return [v.name, store];
    }),
  );
  const cases = [
    { name: '--version', runs: RUNS, run: (v) => timed(v.node, [v.bin, '--version'], env) },
    {
      name: 'images (empty store)',
      runs: RUNS,
      run: (v) => timed(v.node, [v.bin, 'images', '--store', storeWithNothing.get(v.name)], env),
    },
    {
      // Issue 15 item 3: a re-run's per-process cost, a one-image mirror already up to date.
      name: 'mirror (one image, up to date)',
      runs: RUNS,
      run: (v) =>
        timed(
          v.node,
          [v.bin, 'mirror', `docker://${ref('v1')}`, `docker://${registry.host}/bench/copy:v1`],
          env,
        ),
    },
    {
      name: 'pull (already stored)',
      runs: RUNS,
      run: (v) => timed(v.node, [v.bin, 'pull', ref('v1'), '--store', storeWithV1.get(v.name)], env),
    },
    {
      name: 'partial pull of v2',
      runs: PULL_RUNS,
      run: (v) => {
        const store = emptyStore();
        timed(v.node, [v.bin, 'pull', ref('v1'), '--store', store], env);
        const v2 = timed(v.node, [v.bin, 'pull', ref('v2'), '--store', store, '--json'], env);
        if (JSON.parse(v2.stdout).layers[0].method !== 'partial')
          throw new Error(`${v.name}: v2 not partial`);
        fs.rmSync(store, { recursive: true, force: true });
        return v2;
      },
    },
  ];
  const results = {
    runs: RUNS,
    pullRuns: PULL_RUNS,
    variants: variants.map(({ name, version }) => ({ name, node: version })),
    cases: {},
  };
  for (const c of cases) {
    const samples = new Map(variants.map((v) => [v.name, []]));
    for (const v of variants) c.run(v);
    for (let i = 0; i < c.runs; i++) for (const v of variants) samples.get(v.name).push(c.run(v));
    results.cases[c.name] = Object.fromEntries(
      variants.map((v) => {
        const runs = samples.get(v.name);
        return [
          v.name,
          { seconds: median(runs.map((r) => r.seconds)), cpuSeconds: median(runs.map((r) => r.cpuSeconds)) },
        ];
      }),
    );
    console.log(
      `${c.name}: ${variants
        .map((v) => {
          const r = results.cases[c.name][v.name];
          return `${v.name} (Node ${v.version}) ${fmt(r.seconds)} s wall, ${fmt(r.cpuSeconds)} s CPU`;
        })
        .join(' | ')}`,
    );
  }
  console.log(`results: ${writeResults('startup', results)}`);
} finally {
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
