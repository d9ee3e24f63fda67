#!/usr/bin/env node
// Issue 15's big-image benchmark: an image of >= 2 GB uncompressed and >= 100k files, built from
// trees on this machine (/usr/share, /usr/include, /usr/lib/google-cloud-sdk and
// /usr/lib/x86_64-linux-gnu, plus one 256 MiB file; ~3.6 GB, ~108k files), in three layers; v2 edits ~2% of the files and
// three 4 KiB regions inside the big file. Pushed as gzip and as zstd:chunked (skopeo 1.18).
//
// Measured, interleaved run by run (this machine is shared and noisy), medians of BENCH_RUNS (3):
//  - full pull into a fresh store: skiff vs skopeo 1.18 into containers-storage (overlay);
//  - partial v2 after v1 (zstd:chunked): registry bytes (at a counting proxy), wall time;
//  - peak RSS of every skiff run;
//  - the ~150 MB image of bench/full.mjs in the same run, so time per GB and per 10k files can be
//    compared across sizes (a step quadratic in files or chunks shows as a growing per-unit cost).
// Not a test: `node bench/big.mjs` (needs ~20 GB free under $TMPDIR).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
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
  SKIFF,
  skopeo,
  tempDir,
  timedAsync,
  writeResults,
} from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
// BENCH_BIG_SMOKE=1: the same steps on a small image, to check the script itself in a minute.
const SMOKE = process.env.BENCH_BIG_SMOKE === '1';
const LAYER_ROOTS = SMOKE
  ? [['usr/include/linux'], ['usr/share/perl']]
  : // Three layers, each under the 2 GiB a single read of fixtures/lib/mkimage.mjs can take.
    [['usr/lib/google-cloud-sdk'], ['usr/lib/x86_64-linux-gnu', 'usr/include'], ['usr/share']];
const BIG_FILE = 'big/blob.bin';
const BIG_FILE_BYTES = (SMOKE ? 16 : 256) * 1024 * 1024;
const TARGETS = { fullTime: 0.25, partialTime: 0.2, partialBytes: 1, peakRssMiB: 250 };

const work = tempDir('skiff-bench-big-');
const registry = await startRegistry();
const proxy = await startCountingProxy(registry.host);
try {
  const image = buildImages(work);
  console.log(
    `image: ${fmt(image.bytes / 1e9, 2)} GB tar in ${image.layers} layers, ${image.files} files; v2 edits ${image.changed} files and 3 regions of the ${BIG_FILE_BYTES >> 20} MiB file; ${RUNS} runs each`,
  );
  for (const format of ['gzip', 'zstd:chunked'])
    for (const version of ['v1', 'v2'])
      push(image.layouts[version], `bench/big:${tag(format, version)}`, format);
  fs.mkdirSync(path.join(work, 'small'));
  const small = buildBigImage(path.join(work, 'small'));
  push(small.layout, 'bench/small:gzip', 'gzip');

  const ref = (name) => `${proxy.host}/${name}`;
  const rows = [];
  for (const format of ['gzip', 'zstd:chunked']) {
    const runs = await interleaved(RUNS, {
      skiff: () => skiffPull([ref(`bench/big:${tag(format, 'v1')}`)]),
      skopeo: () => skopeoPull([ref(`bench/big:${tag(format, 'v1')}`)]),
    });
    rows.push(row(`full pull, ${format}`, runs, 'seconds', TARGETS.fullTime));
    rows.push(rssRow(`peak RSS, full ${format}`, runs.skiff));
  }
  const partial = await interleaved(RUNS, {
    skiff: () =>
      skiffPull([
        ref(`bench/big:${tag('zstd:chunked', 'v1')}`),
        ref(`bench/big:${tag('zstd:chunked', 'v2')}`),
      ]),
    skopeo: () =>
      skopeoPull(
        [ref(`bench/big:${tag('zstd:chunked', 'v1')}`), ref(`bench/big:${tag('zstd:chunked', 'v2')}`)],
        true,
      ),
  });
  rows.push(row('partial v2, zstd:chunked: time', partial, 'seconds', TARGETS.partialTime));
  rows.push(row('partial v2, zstd:chunked: bytes', partial, 'bytes', TARGETS.partialBytes));
  rows.push(rssRow('peak RSS, partial v2', partial.skiff));
  const smallRuns = await interleaved(RUNS, { skiff: () => skiffPull([ref('bench/small:gzip')]) });

  printTable(rows);
  const perUnit = scaling(
    { bytes: small.bytes, files: small.files, seconds: median(smallRuns.skiff.map((r) => r.seconds)) },
    { bytes: image.bytes, files: image.files, seconds: rows[0].skiff },
  );
  console.log(
    `scaling (skiff, full gzip pull): ${perUnit.map((p) => `${p.name}: ${fmt(p.secondsPerGB)} s/GB, ${fmt(p.secondsPer10kFiles)} s/10k files`).join(' | ')}`,
  );
  const file = writeResults('big', {
    image: { ...image, layouts: undefined },
    runs: RUNS,
    rows,
    scaling: perUnit,
  });
  console.log(`results: ${file}`);
} finally {
  await proxy.stop();
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

function tag(format, version) {
  return `${format.replace(':', '-')}-${version}`;
}

function push(layout, name, format) {
  const compress =
    format === 'zstd:chunked'
      ? ['--dest-compress-format', 'zstd:chunked']
      : ['--dest-compress-format', 'gzip'];
  skopeo(MODERN_SKOPEO, [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    ...compress,
    `oci:${layout}:latest`,
    `docker://${registry.host}/${name}`,
  ]);
}

/** Runs every tool's closure once per round, in turn, so both see the same machine weather. */
async function interleaved(rounds, tools) {
  const results = Object.fromEntries(Object.keys(tools).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++)
    for (const [name, run] of Object.entries(tools)) results[name].push(await run());
  return results;
}

/** Pulls each reference in turn into one fresh store; measures the last. */
async function skiffPull(refs) {
  const store = path.join(work, 'store');
  try {
    let last;
    for (const r of refs) {
      proxy.reset();
      last = await timedAsync(process.execPath, [SKIFF, 'pull', r, '--store', store, '--progress', 'none']);
    }
    return { ...last, bytes: proxy.blobBytes() };
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

async function skopeoPull(refs, partial = false) {
  const storage = containersStorage(partial);
  try {
    let last;
    for (const r of refs) {
      proxy.reset();
      last = await timedAsync(
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
    }
    return { ...last, bytes: proxy.blobBytes() };
  } finally {
    storage.remove();
  }
}

function row(name, runs, key, target) {
  const skiff = median(runs.skiff.map((r) => r[key]));
  const peer = median(runs.skopeo.map((r) => r[key]));
  return {
    name,
    unit: key === 'bytes' ? 'MB' : 's',
    skiff,
    peer,
    ratio: skiff / peer,
    target: `≤ ${target}`,
  };
}

function rssRow(name, runs) {
  const skiff = Math.max(...runs.map((r) => r.rssMiB));
  return {
    name,
    unit: 'MiB',
    skiff,
    peer: undefined,
    ratio: undefined,
    target: `≤ ${TARGETS.peakRssMiB} MiB`,
  };
}

function printTable(rows) {
  const show = (r, v) =>
    v === undefined ? '' : r.unit === 'MB' ? fmt(v / 1e6, 1) : fmt(v, r.unit === 'MiB' ? 0 : 2);
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
  const layouts = {};
  const tarsOf = { v1: [], v2: [] };
  let changed = 0;
  LAYER_ROOTS.forEach((roots, i) => {
    const v1 = path.join(dir, `layer-${i}-v1.tar`);
    const extra = i === LAYER_ROOTS.length - 1 ? ['-C', dir, BIG_FILE] : [];
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-cf', v1, '-C', '/', ...roots, ...extra]);
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
  return {
    layouts,
    layers: LAYER_ROOTS.length,
    bytes: tarsOf.v1.reduce((sum, t) => sum + fs.statSync(t).size, 0),
    files,
    changed,
  };
}
