#!/usr/bin/env node
// Issue 15's big-image benchmark: an image of >= 2 GB uncompressed and >= 100k files, built from
// trees on this machine (/usr/share, /usr/include, /usr/lib/google-cloud-sdk and
// /usr/lib/x86_64-linux-gnu, plus one 256 MiB file; ~3.6 GB, ~108k files), in three layers; v2 edits ~2% of the files and
// three 4 KiB regions inside the big file. Pushed as gzip and as zstd:chunked (skopeo 1.18).
//
// Measured, interleaved run by run (this machine is shared and noisy), medians of BENCH_RUNS (3):
//  - full pull into a fresh store: skiff vs skopeo 1.18 into containers-storage (overlay);
//  - partial v2 (zstd:chunked): each run pulls v1 untimed into a fresh store (a fresh
//    containers-storage for skopeo, partial pulls enabled), then times and counts ONLY the v2 pull:
//    registry bytes (at a counting proxy), wall time, CPU time, peak RSS;
//  - peak RSS of every skiff run;
//  - the ~150 MB image of bench/full.mjs in the same run, so time per GB and per 10k files can be
//    compared across sizes (a step quadratic in files or chunks shows as a growing per-unit cost).
// Not a test: `node bench/big.mjs` (needs ~20 GB free under $TMPDIR).
// BENCH_BIG_SCALE=files: 100k generated small files in two layers plus a 224 MiB file (~0.6 GB),
// the per-file cost of a partial pull without the 3.6 GB image; BENCH_BIG_SMOKE=1 (or
// BENCH_BIG_SCALE=smoke): the same steps on a small image, to check the script in a minute.
// BENCH_BIG_ONLY=partial: only the partial v2 rows. BENCH_BIG_PUSH_TO=HOST: build the image, push
// it to the registry at HOST (bench/big:{gzip,zstd-chunked}-{v1,v2}), write what it holds (bytes,
// files, formats) to bench/results/big-<scale>-pushed.json and stop; BENCH_BIG_REGISTRY=HOST:
// measure the images pushed there earlier (all rows, or BENCH_BIG_ONLY=partial's), so a failed
// measurement does not rebuild 3.6 GB. BENCH_BIG_ONLY=full: only the full-pull rows.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePlatform, writeImage, writeLayout } from '../fixtures/lib/mkimage.mjs';
import { startCountingProxy } from '../scripts/lib/counting-proxy.mjs';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
  buildBigImage,
  containersStorage,
  fmt,
  MODERN_SKOPEO,
  median,
  ROOT,
  SKIFF,
  skopeoPush,
  tempDir,
  timedAsync,
  writeResults,
} from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SCALE = process.env.BENCH_BIG_SMOKE === '1' ? 'smoke' : (process.env.BENCH_BIG_SCALE ?? 'full');
const ONLY_PARTIAL = process.env.BENCH_BIG_ONLY === 'partial';
const ONLY_FULL = process.env.BENCH_BIG_ONLY === 'full';
/** Per scale: each layer's trees (relative to `/`, or to the work directory when generated). */
const SCALES = {
  smoke: { generated: 0, layers: [['usr/include/linux'], ['usr/share/perl']], bigMiB: 16 },
  files: { generated: 100_000, layers: [['gen/a'], ['gen/b']], bigMiB: 224 },
  // Three layers, each under the 2 GiB a single read of fixtures/lib/mkimage.mjs can take.
  full: {
    generated: 0,
    layers: [['usr/lib/google-cloud-sdk'], ['usr/lib/x86_64-linux-gnu', 'usr/include'], ['usr/share']],
    bigMiB: 256,
  },
};
const { generated: GENERATED_FILES, layers: LAYER_ROOTS, bigMiB } = SCALES[SCALE];
const BIG_FILE = 'big/blob.bin';
const BIG_FILE_BYTES = bigMiB * 1024 * 1024;
// BENCH_SKIFF=PATH/bin/run.js: another build of skiff (a before/after comparison, as a third column).
const BEFORE = process.env.BENCH_SKIFF;
// BENCH_SKIFF_ENV='{"NAME":"value"}': extra environment for skiff (e.g. a CPU profile's NODE_OPTIONS).
const SKIFF_ENV = JSON.parse(process.env.BENCH_SKIFF_ENV ?? '{}');
const TARGETS = { fullTime: 0.25, partialTime: 0.2, partialBytes: 1, peakRssMiB: 250 };

const PUSH_TO = process.env.BENCH_BIG_PUSH_TO;
const PUSHED = process.env.BENCH_BIG_REGISTRY;
/** What BENCH_BIG_PUSH_TO pushed (the image's size and files, for the per-unit figures). */
const PUSHED_FILE = path.join(ROOT, 'bench/results', `big-${SCALE}-pushed.json`);
const work = tempDir('skiff-bench-big-');
const existing = PUSH_TO ?? PUSHED;
const registry = existing ? { host: existing, stop: async () => {} } : await startRegistry();
const proxy = await startCountingProxy(registry.host);
try {
  if (PUSHED) await measure(pushedImage(PUSHED), ONLY_PARTIAL ? ['zstd:chunked'] : ['gzip', 'zstd:chunked']);
  else await buildPushMeasure();
} finally {
  await proxy.stop();
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

async function buildPushMeasure() {
  const image = buildImages(work);
  console.log(
    `image (${SCALE}): ${fmt(image.bytes / 1e9, 2)} GB tar in ${image.layers} layers, ${image.files} files; v2 edits ${image.changed} files and 3 regions of the ${BIG_FILE_BYTES >> 20} MiB file; ${RUNS} runs each`,
  );
  const formats = ONLY_PARTIAL ? ['zstd:chunked'] : ['gzip', 'zstd:chunked'];
  for (const format of formats)
    for (const version of ['v1', 'v2']) {
      push(image.layouts[version], `bench/big:${tag(format, version)}`, format);
      await expectCompression(`bench/big:${tag(format, version)}`, format);
    }
  for (const name of ['v1', 'v2']) fs.rmSync(image.layouts[name], { recursive: true, force: true });
  if (PUSH_TO) {
    fs.mkdirSync(path.dirname(PUSHED_FILE), { recursive: true });
    const pushed = { host: PUSH_TO, formats, image: { ...image, layouts: undefined } };
    fs.writeFileSync(PUSHED_FILE, `${JSON.stringify(pushed, null, 2)}\n`);
    console.log(`pushed to ${PUSH_TO}: ${PUSHED_FILE}`);
  } else await measure(image, formats);
}

/** The image BENCH_BIG_PUSH_TO pushed to `host` (its facts, when this checkout pushed it). */
function pushedImage(host) {
  const pushed = fs.existsSync(PUSHED_FILE) ? JSON.parse(fs.readFileSync(PUSHED_FILE, 'utf8')) : undefined;
  if (pushed?.host !== host) return { pushedEarlierTo: host, scale: SCALE };
  return { ...pushed.image, pushedEarlierTo: host };
}

async function measure(image, formats) {
  const small =
    ONLY_PARTIAL || image.bytes === undefined ? undefined : buildSmallImage(path.join(work, 'small'));
  if (small) push(small.layout, 'bench/small:gzip', 'gzip');

  const ref = (name) => `${proxy.host}/${name}`;
  const rows = [];
  const fullRuns = {};
  if (!ONLY_PARTIAL)
    for (const format of formats) {
      const runs = await interleaved(RUNS, {
        skiff: () => skiffPull(undefined, ref(`bench/big:${tag(format, 'v1')}`)),
        skopeo: () => skopeoPull(undefined, ref(`bench/big:${tag(format, 'v1')}`)),
      });
      fullRuns[format] = runs;
      rows.push(row(`full pull, ${format}`, runs, 'seconds', TARGETS.fullTime));
      rows.push(row(`full pull, ${format}: CPU`, runs, 'cpuSeconds', undefined));
      rows.push(rssRow(`peak RSS, full ${format}`, runs));
    }
  const [v1, v2] = ['v1', 'v2'].map((version) => ref(`bench/big:${tag('zstd:chunked', version)}`));
  const partial = ONLY_FULL
    ? undefined
    : await interleaved(RUNS, {
        skiff: () => skiffPull(v1, v2),
        skopeo: () => skopeoPull(v1, v2, true),
        ...(BEFORE ? { before: () => skiffPull(v1, v2, BEFORE) } : {}),
      });
  if (partial) {
    rows.push(row('partial v2 alone, zstd:chunked: time', partial, 'seconds', TARGETS.partialTime));
    rows.push(row('partial v2 alone, zstd:chunked: CPU', partial, 'cpuSeconds', undefined));
    rows.push(row('partial v2 alone, zstd:chunked: bytes', partial, 'bytes', TARGETS.partialBytes));
    rows.push(row('partial v2 alone: blob GETs', partial, 'blobGets', undefined));
    rows.push(rssRow('peak RSS, partial v2', partial));
  }
  if (partial && BEFORE)
    for (const key of ['seconds', 'cpuSeconds', 'bytes'])
      rows.push(
        row(
          `partial v2 alone: ${key}, skiff vs BENCH_SKIFF`,
          { skiff: partial.skiff, skopeo: partial.before },
          key,
        ),
      );
  const smallRuns = small
    ? await interleaved(RUNS, { skiff: () => skiffPull(undefined, ref('bench/small:gzip')) })
    : undefined;

  printTable(rows);
  const perUnit = smallRuns
    ? scaling(
        { bytes: small.bytes, files: small.files, seconds: median(smallRuns.skiff.map((r) => r.seconds)) },
        { bytes: image.bytes, files: image.files, seconds: rows[0].skiff },
      )
    : [];
  if (smallRuns)
    console.log(
      `scaling (skiff, full gzip pull): ${perUnit.map((p) => `${p.name}: ${fmt(p.secondsPerGB)} s/GB, ${fmt(p.secondsPer10kFiles)} s/10k files`).join(' | ')}`,
    );
  const file = writeResults(SCALE === 'full' ? 'big' : `big-${SCALE}`, {
    image: { ...image, layouts: undefined },
    scale: SCALE,
    runs: RUNS,
    rows,
    fullRuns,
    partialRuns: partial,
    scaling: perUnit,
  });
  console.log(`results: ${file}`);
}

/** bench/full.mjs's ~150 MB image, for time per GB and per 10k files beside the big one. */
function buildSmallImage(dir) {
  fs.mkdirSync(dir);
  return buildBigImage(dir);
}

function tag(format, version) {
  return `${format.replace(':', '-')}-${version}`;
}

function push(layout, name, format) {
  const compress =
    format === 'zstd:chunked'
      ? ['--dest-compress-format', 'zstd:chunked']
      : ['--dest-compress-format', 'gzip'];
  skopeoPush(MODERN_SKOPEO, [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    ...compress,
    `oci:${layout}:latest`,
    `docker://${registry.host}/${name}`,
  ]);
}

/** Fails the run if the registry holds `name` in another format than was pushed (see skopeoPush). */
async function expectCompression(name, format) {
  const [repository, reference] = name.split(':');
  const response = await fetch(`http://${registry.host}/v2/${repository}/manifests/${reference}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const { layers } = await response.json();
  const chunked = (l) =>
    l.mediaType.endsWith('+zstd') && l.annotations?.['io.github.containers.zstd-chunked.manifest-checksum'];
  const wrong = layers.filter((l) =>
    format === 'zstd:chunked' ? !chunked(l) : !l.mediaType.endsWith('+gzip'),
  );
  if (wrong.length)
    throw new Error(`${name}: ${wrong.length} layers pushed as ${wrong[0].mediaType}, not ${format}`);
}

/** Runs every tool's closure once per round, in turn, so both see the same machine weather. */
async function interleaved(rounds, tools) {
  const results = Object.fromEntries(Object.keys(tools).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++)
    for (const [name, run] of Object.entries(tools)) {
      const result = await run();
      results[name].push(result);
      // Each run as it ends: a long bench that fails late still leaves its figures in the log.
      const { stdout: _, ...figures } = result;
      const load = os.loadavg()[0].toFixed(1);
      console.log(`run ${round + 1}/${rounds} ${name}: ${JSON.stringify(figures)} (load ${load})`);
    }
  return results;
}

/**
 * Into a fresh store: pulls `before` (if any) untimed, then times `measured` alone and counts the
 * blob bytes and GETs the registry served for it.
 */
async function skiffPull(before, measured, skiff = SKIFF) {
  const store = path.join(work, 'store');
  const pull = (r) =>
    timedAsync(process.execPath, [skiff, 'pull', r, '--store', store, '--progress', 'none'], SKIFF_ENV);
  try {
    if (before) await pull(before);
    proxy.reset();
    const run = await pull(measured);
    return { ...run, bytes: proxy.blobBytes(), blobGets: proxy.blobGets().length };
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

/** The same with skopeo 1.18 into a fresh containers-storage (overlay). */
async function skopeoPull(before, measured, partial = false) {
  const storage = containersStorage(partial);
  const pull = (r) =>
    timedAsync(
      MODERN_SKOPEO,
      [
        'copy',
        '-q',
        '--src-tls-verify=false',
        `docker://${r}`,
        `containers-storage:${r.split('/').slice(1).join('/')}`,
      ],
      storage.env,
    );
  try {
    if (before) await pull(before);
    proxy.reset();
    const run = await pull(measured);
    return { ...run, bytes: proxy.blobBytes(), blobGets: proxy.blobGets().length };
  } finally {
    storage.remove();
  }
}

function row(name, runs, key, target) {
  const skiff = median(runs.skiff.map((r) => r[key]));
  const peer = median(runs.skopeo.map((r) => r[key]));
  return {
    name,
    unit: key === 'bytes' ? 'MB' : key === 'blobGets' ? 'requests' : 's',
    skiff,
    peer,
    ratio: skiff / peer,
    target: target === undefined ? '' : `≤ ${target}`,
  };
}

/** The highest peak RSS of skiff's runs (and of skopeo's, for scale). */
function rssRow(name, runs) {
  const skiff = Math.max(...runs.skiff.map((r) => r.rssMiB));
  const peer = Math.max(...runs.skopeo.map((r) => r.rssMiB));
  return {
    name,
    unit: 'MiB',
    skiff,
    peer,
    ratio: undefined,
    target: `≤ ${TARGETS.peakRssMiB} MiB`,
  };
}

function printTable(rows) {
  const show = (r, v) =>
    v === undefined
      ? ''
      : r.unit === 'MB'
        ? fmt(v / 1e6, 1)
        : fmt(v, r.unit === 'MiB' || r.unit === 'requests' ? 0 : 2);
  const lines = [
    ['', 'skiff', 'skopeo 1.18', 'ratio', 'target'],
    ...rows.map((r) => [
      `${r.name} (${r.unit})`,
      show(r, r.skiff),
      show(r, r.peer),
      r.ratio === undefined ? '' : fmt(r.ratio),
      r.target,
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(widths[i])).join('  '));
}

function scaling(small, big) {
  return [
    { name: `${fmt(small.bytes / 1e6, 0)} MB, ${small.files} files`, ...small },
    { name: `${fmt(big.bytes / 1e9, 2)} GB, ${big.files} files`, ...big },
  ].map((s) => ({
    ...s,
    secondsPerGB: s.seconds / (s.bytes / 1e9),
    secondsPer10kFiles: s.seconds / (s.files / 1e4),
  }));
}

/**
 * v1 and v2 as OCI layouts of uncompressed layers. v1's tars come straight from the trees (plus the
 * big file, in the last layer); v2's are v1's rewritten by bench/lib/edit-tar.py: every 50th
 * regular file gets a line appended, and the big file three 4 KiB regions overwritten.
 */
function buildImages(dir) {
  fs.mkdirSync(path.join(dir, 'big'), { recursive: true });
  // Binary data from the machine, not zeros or random bytes: compresses as real files do.
  execFileSync('bash', [
    '-c',
    `find /usr/lib/x86_64-linux-gnu -type f -size +1M -print0 | sort -z | xargs -0 cat 2>/dev/null | head -c ${BIG_FILE_BYTES} > ${path.join(dir, BIG_FILE)}`,
  ]);
  if (GENERATED_FILES) generateFiles(dir, LAYER_ROOTS, GENERATED_FILES);
  const layouts = {};
  const tarsOf = { v1: [], v2: [] };
  let changed = 0;
  LAYER_ROOTS.forEach((roots, i) => {
    const v1 = path.join(dir, `layer-${i}-v1.tar`);
    const last = i === LAYER_ROOTS.length - 1;
    // The big file (in the last layer) is under the work directory, as generated trees are.
    const from = GENERATED_FILES
      ? ['-C', dir, ...roots, ...(last ? [BIG_FILE] : [])]
      : ['-C', '/', ...roots, ...(last ? ['-C', dir, BIG_FILE] : [])];
    // -b1: no padding to a 10 KiB record after the end-of-archive blocks. skopeo 1.18 records such
    // padding in the tar-split in pieces (e.g. 8 + 8184 bytes) and its own partial pull then fails
    // "tar-split and TOC data is inconsistent: decoding a tar header …: unexpected EOF".
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-b1', '-cf', v1, ...from]);
    const v2 = path.join(dir, `layer-${i}-v2.tar`);
    changed += Number(
      execFileSync('python3', [path.join(import.meta.dirname, 'lib/edit-tar.py'), v1, v2, BIG_FILE]),
    );
    tarsOf.v1.push(v1);
    tarsOf.v2.push(v2);
  });
  for (const version of ['v1', 'v2']) {
    const layout = path.join(dir, `${version}-oci`);
    writeLayout(
      layout,
      [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: tarsOf[version] })],
      'latest',
    );
    layouts[version] = layout;
  }
  const regularFiles = (tar) =>
    Number(
      execFileSync('bash', ['-c', `tar -tvf ${tar} | grep -c '^-'`])
        .toString()
        .trim(),
    );
  const files = tarsOf.v1.reduce((sum, t) => sum + regularFiles(t), 0);
  const bytes = tarsOf.v1.reduce((sum, t) => sum + fs.statSync(t).size, 0);
  for (const tar of [...tarsOf.v1, ...tarsOf.v2]) fs.rmSync(tar);
  if (GENERATED_FILES) fs.rmSync(path.join(dir, 'gen'), { recursive: true, force: true });
  return {
    layouts,
    layers: LAYER_ROOTS.length,
    bytes,
    files,
    changed,
  };
}

/**
 * `count` small files (64 B to 8 KiB, text cut from /usr/include and /usr/share/perl, so they
 * compress as source files do) spread over the layers' roots, 1,000 to a directory.
 */
function generateFiles(dir, layerRoots, count) {
  const text = execFileSync(
    'bash',
    [
      '-c',
      'find /usr/include /usr/share/perl -type f -name "*.[hp]*" -print0 | sort -z | xargs -0 cat | head -c 67108864',
    ],
    { maxBuffer: 128 * 1024 * 1024 },
  );
  // A 32-bit LCG in integer arithmetic (Math.imul: the product of two doubles past 2^53 drops its
  // low bits, and the sequence then cycled after a few thousand files, so most files repeated), of
  // which only the high 16 bits are used (an LCG's low bits have short periods).
  let seed = 1;
  const next16 = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 16;
  };
  const random = () => next16() * 65536 + next16();
  const roots = layerRoots.map((r) => r[0]);
  for (let i = 0; i < count; i++) {
    const folder = path.join(dir, roots[i % roots.length], `d${Math.floor(i / roots.length / 1000)}`);
    if (i % (roots.length * 1000) < roots.length) fs.mkdirSync(folder, { recursive: true });
    const size = 64 + (random() % 8128);
    const at = random() % (text.length - size);
    fs.writeFileSync(path.join(folder, `f${i}.txt`), text.subarray(at, at + size));
  }
}
