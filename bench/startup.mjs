#!/usr/bin/env node
// Issue 11's benchmark: what a command costs before it does anything, and a whole partial pull:
// `skiff --version`, `skiff mirror --help`, `skiff images` on an empty store, `skiff mirror` of one
// image already mirrored, `skiff pull` of an image already stored, `skiff unpack` of it into
// tmpfs (/dev/shm), and the partial pull of v2 of bench/partial's image (v1 already stored). Each
// start-up case also counts the modules the command loads (ESM, CommonJS and builtins, through a
// module-load hook in a run of its own). With BENCH_BEFORE=DIR (a built checkout of another
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
const hook = path.join(work, 'count-modules.mjs');
fs.writeFileSync(
  hook,
  `import fs from 'node:fs';
import module from 'node:module';
const loaded = new Set();
module.registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context); } });
process.on('exit', () => fs.writeFileSync(process.env.COUNT_MODULES, String(loaded.size)));
`,
);
/** How many modules one run of the case loads. */
function modulesLoaded(c, v) {
  const out = path.join(work, 'modules.txt');
  c.run(v, { NODE_OPTIONS: `--import=${hook}`, COUNT_MODULES: out });
  return Number(fs.readFileSync(out, 'utf8'));
}
const unpackRoot = fs.mkdtempSync('/dev/shm/skiff-bench-unpack-');
let unpacks = 0;
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
    { name: '--version', runs: RUNS, run: (v, e) => timed(v.node, [v.bin, '--version'], { ...env, ...e }) },
    {
      name: 'mirror --help',
      runs: RUNS,
      run: (v, e) => timed(v.node, [v.bin, 'mirror', '--help'], { ...env, ...e }),
    },
    {
      name: 'images (empty store)',
      runs: RUNS,
      run: (v, e) =>
        timed(v.node, [v.bin, 'images', '--store', storeWithNothing.get(v.name)], { ...env, ...e }),
    },
    {
      // Issue 15 item 3: a re-run's per-process cost, a one-image mirror already up to date.
      name: 'mirror (one image, up to date)',
      runs: RUNS,
      run: (v, e) =>
        timed(v.node, [v.bin, 'mirror', `docker://${ref('v1')}`, `docker://${registry.host}/bench/copy:v1`], {
          ...env,
          ...e,
        }),
    },
    {
      name: 'pull (already stored)',
      runs: RUNS,
      run: (v, e) =>
        timed(v.node, [v.bin, 'pull', ref('v1'), '--store', storeWithV1.get(v.name)], { ...env, ...e }),
    },
    {
      // Issue 15 item 1: the fixed cost of an unpack, whose tree is small here.
      name: 'unpack into tmpfs',
      runs: RUNS,
      run: (v, e) => {
        const target = path.join(unpackRoot, String(unpacks++));
        const result = timed(
          v.node,
          [v.bin, 'unpack', ref('v1'), target, '--store', storeWithV1.get(v.name)],
          {
            ...env,
            ...e,
          },
        );
        fs.rmSync(target, { recursive: true, force: true });
        return result;
      },
    },
    {
      name: 'partial pull of v2',
      runs: PULL_RUNS,
      countModules: false,
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
    const modules = new Map(
      c.countModules !== false ? variants.map((v) => [v.name, modulesLoaded(c, v)]) : [],
    );
    for (let i = 0; i < c.runs; i++) for (const v of variants) samples.get(v.name).push(c.run(v));
    results.cases[c.name] = Object.fromEntries(
      variants.map((v) => {
        const runs = samples.get(v.name);
        return [
          v.name,
          {
            seconds: median(runs.map((r) => r.seconds)),
            cpuSeconds: median(runs.map((r) => r.cpuSeconds)),
            modules: modules.get(v.name),
          },
        ];
      }),
    );
    console.log(
      `${c.name}: ${variants
        .map((v) => {
          const r = results.cases[c.name][v.name];
          const modules = r.modules === undefined ? '' : `, ${r.modules} modules`;
          return `${v.name} (Node ${v.version}) ${fmt(r.seconds)} s wall, ${fmt(r.cpuSeconds)} s CPU${modules}`;
        })
        .join(' | ')}`,
    );
  }
  console.log(`results: ${writeResults('startup', results)}`);
} finally {
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(unpackRoot, { recursive: true, force: true });
}
