#!/usr/bin/env node
// Issue 15's many-images benchmark: one list of >= 30 images mirrored registry -> registry in one
// run, `skiff mirror --file` against `skopeo sync` (1.18) of the same list (its YAML source form),
// each into a fresh destination registry, interleaved, medians of BENCH_RUNS (3); then each tool's
// re-run of its completed mirror.
//
// The list: three repositories of ten tags each, one per compression (gzip, zstd, zstd:chunked);
// within a repository the tags share a ~120 MB base layer and differ in a small top layer; plus a
// multi-arch index under two tags. Counted at proxies in front of both registries, not taken from
// either tool's report: blob bytes read from the source, blob uploads per digest at the destination
// (a shared blob should cross the wire once), and on the re-run, manifest GETs and blob transfers.
// Each round also runs skiff's first run with --jobs 1 and 8 (4 is the default): wall time and peak
// RSS by jobs, since the run's connections are one budget however many images are in flight.
// BENCH_SKIFF=PATH/bin/run.js: another build of skiff (e.g. /work/main's), run in every round right
// after this one, first run and re-run, for a before/after comparison by CPU and wall time.
// BENCH_MANY_SOURCE=HOST:PORT: a registry that already holds the list as this script pushes it
// (a previous run's, kept up), instead of building and pushing it again (~5 minutes).
// Not a test: `node bench/mirror-many.mjs`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePlatform, writeImage, writeLayout } from '../fixtures/lib/mkimage.mjs';
import { startCountingProxy } from '../scripts/lib/counting-proxy.mjs';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
  fmt,
  MODERN_SKOPEO,
  median,
  SKIFF,
  skopeo,
  skopeoPush,
  tempDir,
  timedAsync,
  writeResults,
} from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const COMPRESSIONS = ['gzip', 'zstd', 'zstd:chunked'];
// BENCH_MANY_SMOKE=1: two tags per repository, to check the script itself quickly.
const TAGS = Array.from({ length: process.env.BENCH_MANY_SMOKE === '1' ? 2 : 10 }, (_, i) => `v${i + 1}`);
const MULTI_TAGS = ['latest', 'stable'];
const TARGETS = { firstRun: 0.5, rerunOfFirst: 0.2 };
const JOBS = [1, 8];
const BEFORE = process.env.BENCH_SKIFF;
const SOURCE = process.env.BENCH_MANY_SOURCE;

const work = tempDir('skiff-bench-many-');
const source = SOURCE ? { host: SOURCE, stop: async () => {} } : await startRegistry();
const sourceProxy = await startCountingProxy(source.host);
try {
  const images = SOURCE
    ? COMPRESSIONS.length * TAGS.length + MULTI_TAGS.length
    : pushImages(work, source.host);
  console.log(`list: ${images} images in ${COMPRESSIONS.length + 1} repositories; ${RUNS} runs each`);
  const skiffList = writeSkiffList(work, sourceProxy.host);
  const skopeoList = writeSkopeoList(work, sourceProxy.host);

  const machine = `${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)} at start`;
  const skiffRun =
    (extra, skiff = SKIFF) =>
    (dest) => [
      process.execPath,
      [skiff, 'mirror', '--file', skiffList(dest), '--json', '--progress', 'none', ...extra],
    ];
  const runs = {
    skiff: [],
    skopeo: [],
    ...(BEFORE ? { before: [] } : {}),
    ...Object.fromEntries(JOBS.map((j) => [`jobs${j}`, []])),
  };
  for (let round = 0; round < RUNS; round++) {
    runs.skiff.push(await measure(skiffRun([])));
    if (BEFORE) runs.before.push(await measure(skiffRun([], BEFORE)));
    for (const j of JOBS) runs[`jobs${j}`].push(await measure(skiffRun(['--jobs', String(j)]), false));
    runs.skopeo.push(
      await measure((dest) => [
        MODERN_SKOPEO,
        [
          'sync',
          '--all',
          '--src',
          'yaml',
          '--dest',
          'docker',
          '--dest-tls-verify=false',
          skopeoList,
          `${dest}/mirror`,
        ],
      ]),
    );
  }
  const m = (tool, pick) => median(runs[tool].map(pick));
  const rows = [
    row(
      'first run, wall (s)',
      m('skiff', (r) => r.first.seconds),
      m('skopeo', (r) => r.first.seconds),
      `≤ ${TARGETS.firstRun}`,
    ),
    row(
      'first run, CPU (s)',
      m('skiff', (r) => r.first.cpuSeconds),
      m('skopeo', (r) => r.first.cpuSeconds),
    ),
    row(
      'first run, source blob MB',
      m('skiff', (r) => r.first.sourceBytes / 1e6),
      m('skopeo', (r) => r.first.sourceBytes / 1e6),
    ),
    row(
      'first run, blob uploads',
      m('skiff', (r) => r.first.uploads),
      m('skopeo', (r) => r.first.uploads),
    ),
    row(
      'first run, blobs uploaded twice or more',
      m('skiff', (r) => r.first.repeatedUploads),
      m('skopeo', (r) => r.first.repeatedUploads),
      '0 (skiff)',
    ),
    row(
      'first run, blobs read from the source twice or more',
      m('skiff', (r) => r.first.repeatedSourceGets),
      m('skopeo', (r) => r.first.repeatedSourceGets),
      '0 (skiff)',
    ),
    row(
      're-run, wall (s)',
      m('skiff', (r) => r.again.seconds),
      m('skopeo', (r) => r.again.seconds),
    ),
    row(
      're-run, CPU (s)',
      m('skiff', (r) => r.again.cpuSeconds),
      m('skopeo', (r) => r.again.cpuSeconds),
    ),
    row(
      're-run / first run',
      m('skiff', (r) => r.again.seconds / r.first.seconds),
      m('skopeo', (r) => r.again.seconds / r.first.seconds),
      `≤ ${TARGETS.rerunOfFirst} (skiff)`,
    ),
    row(
      're-run, source manifest GETs',
      m('skiff', (r) => r.again.manifestGets),
      m('skopeo', (r) => r.again.manifestGets),
      '0 (skiff)',
    ),
    row(
      're-run, destination manifest GETs',
      m('skiff', (r) => r.again.destinationManifestGets),
      m('skopeo', (r) => r.again.destinationManifestGets),
    ),
    row(
      're-run, blob transfers',
      m('skiff', (r) => r.again.blobTransfers),
      m('skopeo', (r) => r.again.blobTransfers),
      '0 (skiff)',
    ),
    row(
      'peak RSS (MiB)',
      Math.max(...runs.skiff.map((r) => r.first.rssMiB)),
      Math.max(...runs.skopeo.map((r) => r.first.rssMiB)),
      '≤ 250 (skiff)',
    ),
    // skiff against itself: the peer column is the default, --jobs 4.
    ...JOBS.flatMap((j) => [
      row(
        `first run --jobs ${j} vs 4, wall (s)`,
        m(`jobs${j}`, (r) => r.first.seconds),
        m('skiff', (r) => r.first.seconds),
      ),
      row(
        `first run --jobs ${j} vs 4, peak RSS (MiB)`,
        Math.max(...runs[`jobs${j}`].map((r) => r.first.rssMiB)),
        Math.max(...runs.skiff.map((r) => r.first.rssMiB)),
        '≤ 250',
      ),
    ]),
  ];
  // skiff against BENCH_SKIFF: the peer column is the other build.
  if (BEFORE)
    for (const [name, pick] of [
      ['first run, wall (s)', (r) => r.first.seconds],
      ['first run, CPU (s)', (r) => r.first.cpuSeconds],
      ['re-run, wall (s)', (r) => r.again.seconds],
      ['re-run, CPU (s)', (r) => r.again.cpuSeconds],
      ['re-run / first run', (r) => r.again.seconds / r.first.seconds],
      ['re-run CPU / first run CPU', (r) => r.again.cpuSeconds / r.first.cpuSeconds],
    ])
      rows.push(row(`${name}, skiff vs BENCH_SKIFF`, m('skiff', pick), m('before', pick)));
  printTable(rows);
  const finished = `${machine}, ${os.loadavg()[0].toFixed(1)} at the end; ${new Date().toISOString()}`;
  console.log(finished);
  console.log(
    `results: ${writeResults('mirror-many', { images, runs: RUNS, machine: finished, rows, raw: runs })}`,
  );
} finally {
  await sourceProxy.stop();
  await source.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

/** A first run into a fresh destination registry, then the re-run; counted at both proxies. */
async function measure(command, rerun = true) {
  const dest = await startRegistry();
  const destProxy = await startCountingProxy(dest.host);
  try {
    const once = async () => {
      sourceProxy.reset();
      destProxy.reset();
      const [binary, args] = command(destProxy.host);
      const timing = await timedAsync(binary, args);
      const uploads = destProxy.uploads().filter((r) => r.method === 'PUT');
      const perDigest = new Map();
      for (const u of uploads) {
        const digest = /digest=(sha256(?::|%3A)[a-f0-9]{64})/i.exec(u.path)?.[1] ?? u.path;
        perDigest.set(digest, (perDigest.get(digest) ?? 0) + 1);
      }
      const sourceGets = new Map();
      for (const g of sourceProxy.blobGets()) sourceGets.set(g.path, (sourceGets.get(g.path) ?? 0) + 1);
      const manifestGets = (proxy) =>
        proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).length;
      return {
        seconds: timing.seconds,
        cpuSeconds: timing.cpuSeconds,
        rssMiB: timing.rssMiB,
        sourceBytes: sourceProxy.blobBytes(),
        uploads: uploads.length,
        repeatedUploads: [...perDigest.values()].filter((n) => n > 1).length,
        repeatedSourceGets: [...sourceGets.values()].filter((n) => n > 1).length,
        manifestGets: manifestGets(sourceProxy),
        destinationManifestGets: manifestGets(destProxy),
        blobTransfers: sourceProxy.blobGets().length + uploads.length,
      };
    };
    const first = await once();
    return rerun ? { first, again: await once() } : { first };
  } finally {
    await destProxy.stop();
    await dest.stop();
  }
}

function row(name, skiff, peer, target = '') {
  return { name, skiff, peer, ratio: peer ? skiff / peer : undefined, target };
}

function printTable(rows) {
  const lines = [
    ['', 'skiff', 'skopeo sync', 'ratio', 'target'],
    ...rows.map((r) => [
      r.name,
      fmt(r.skiff),
      fmt(r.peer),
      r.ratio === undefined ? '' : fmt(r.ratio),
      r.target,
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(widths[i])).join('  '));
}

/** Builds and pushes every image of the list; returns how many images (tags) it holds. */
function pushImages(dir, host) {
  const base = path.join(dir, 'base.tar');
  execFileSync('tar', ['--sort=name', '--numeric-owner', '-b1', '-cf', base, '-C', '/', 'usr/include']);
  for (const compression of COMPRESSIONS)
    for (const tag of TAGS) {
      const top = path.join(dir, `top-${tag}`);
      fs.mkdirSync(path.join(top, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(top, 'etc/release'), `${compression} ${tag}\n`.repeat(1000));
      const topTar = `${top}.tar`;
      execFileSync('tar', ['--sort=name', '--numeric-owner', '-b1', '-cf', topTar, '-C', top, 'etc']);
      const layout = path.join(dir, `oci-${repo(compression)}-${tag}`);
      writeLayout(
        layout,
        [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: [base, topTar] })],
        'latest',
      );
      // A private blob cache: with the shared one skopeo pushes the gzip copy of the base layer
      // it already sent, whatever compression is asked for (bench/lib.mjs skopeoPush).
      skopeoPush(MODERN_SKOPEO, [
        'copy',
        '-q',
        '--dest-tls-verify=false',
        '--dest-compress-format',
        compression,
        `oci:${layout}:latest`,
        `docker://${host}/${repo(compression)}:${tag}`,
      ]);
      fs.rmSync(layout, { recursive: true, force: true });
    }
  const multi = path.join(import.meta.dirname, '../fixtures/images/multi');
  for (const tag of MULTI_TAGS)
    skopeo(MODERN_SKOPEO, [
      'copy',
      '-q',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${multi}:latest`,
      `docker://${host}/multi:${tag}`,
    ]);
  return COMPRESSIONS.length * TAGS.length + MULTI_TAGS.length;
}

function repo(compression) {
  return `app-${compression.replace(':', '-')}`;
}

/** skiff's list: one item per repository with its tags, each to DEST/mirror/REPO. */
function writeSkiffList(dir, host) {
  return (dest) => {
    const file = path.join(dir, 'list.yaml');
    const items = [...COMPRESSIONS.map((c) => [repo(c), TAGS, false]), ['multi', MULTI_TAGS, true]];
    const lines = ['images:'];
    for (const [name, tags, all] of items) {
      lines.push(
        `  - source: docker://${host}/${name}`,
        `    tags: [${tags.map((t) => `"${t}"`).join(', ')}]`,
      );
      if (all) lines.push('    all: true');
      lines.push(`    destination: docker://${dest}/mirror/${name}`);
    }
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  };
}

/** The same list as skopeo sync's YAML source. */
function writeSkopeoList(dir, host) {
  const file = path.join(dir, 'sync.yaml');
  const repos = [...COMPRESSIONS.map((c) => [repo(c), TAGS]), ['multi', MULTI_TAGS]];
  const lines = [`${host}:`, '  tls-verify: false', '  images:'];
  for (const [name, tags] of repos) lines.push(`    ${name}: [${tags.map((t) => `"${t}"`).join(', ')}]`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
