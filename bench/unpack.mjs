#!/usr/bin/env node
// Issue 15's unpack benchmark: `skiff unpack` of the two-layer benchmark image (/usr/include;
// /usr/share/perl) against `tar -x` of the same layer tars, both from the page cache into fresh
// directories, interleaved, medians of BENCH_RUNS runs (default 5). The trees are compared after
// each pair (types, modes, owners, times, link counts, contents): a fast unpack of another tree
// would be no result. Then the same for an image of BENCH_UNPACK_FILES (default 100,000) small
// files, the per-file cost at scale. BENCH_BEFORE=DIR times another built checkout in the same runs.
// Not a test: run `node bench/unpack.mjs` after `npm run build`.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parsePlatform, writeImage, writeLayout } from '../fixtures/lib/mkimage.mjs';
import { buildBigImage, fmt, median, RUNS, SKIFF, tempDir, timed, writeResults } from './lib.mjs';

const TARGET = 1.5;
/** How many files the many-files image has (0: skip it). */
const MANY = Number(process.env.BENCH_UNPACK_FILES ?? 100_000);
/** Another checkout of skiff (built) to time in the same runs: BENCH_BEFORE=DIR. */
const BEFORE = process.env.BENCH_BEFORE;
const work = tempDir('skiff-bench-unpack-');
try {
  const images = [
    { name: 'usr/include + usr/share/perl', ...buildBigImage(work, [['usr/include'], ['usr/share/perl']]) },
  ];
  if (MANY > 0)
    images.push({ name: `${MANY} small files`, ...buildManyFilesImage(work, MANY), implied: new Set() });
  const rows = [];
  for (const image of images) {
    const store = path.join(work, `store-${rows.length}`);
    const ref = `oci:${image.layout}:latest`;
    execFileSync(process.execPath, [SKIFF, 'pull', ref, '--store', store], { stdio: 'ignore' });
    console.log(
      `image: ${image.name}, ${fmt(image.bytes / 1e6, 1)} MB in ${image.tars.length} layers, ${image.files} files; ${RUNS} runs each`,
    );
    const tar = [];
    const skiff = [];
    const before = [];
    for (let run = 0; run < RUNS; run++) {
      const byTar = path.join(work, `tar-${run}`);
      fs.mkdirSync(byTar);
      const extract = image.tars.map((t) => `tar -xf ${t} -C ${byTar}`).join(' && ');
      tar.push(timed('bash', ['-c', extract]));
      const bySkiff = path.join(work, `skiff-${run}`);
      skiff.push(timed(process.execPath, [SKIFF, 'unpack', ref, bySkiff, '--store', store]));
      const differences = compare(byTar, bySkiff, image.implied);
      if (differences.length > 0) throw new Error(`trees differ: ${differences.slice(0, 5).join(', ')}`);
      fs.rmSync(bySkiff, { recursive: true, force: true });
      if (BEFORE) {
        before.push(
          timed(process.execPath, [
            path.join(BEFORE, 'bin/run.js'),
            'unpack',
            ref,
            bySkiff,
            '--store',
            store,
          ]),
        );
        const changed = compare(byTar, bySkiff, image.implied);
        if (changed.length > 0) throw new Error(`trees differ (before): ${changed.slice(0, 5).join(', ')}`);
        fs.rmSync(bySkiff, { recursive: true, force: true });
      }
      fs.rmSync(byTar, { recursive: true, force: true });
    }
    fs.rmSync(store, { recursive: true, force: true });
    const row = {
      image: { name: image.name, bytes: image.bytes, files: image.files },
      tar: summary(tar),
      skiff: summary(skiff),
      ...(BEFORE ? { before: summary(before) } : {}),
    };
    row.ratio = row.skiff.seconds / row.tar.seconds;
    row.cpuRatio = row.skiff.cpuSeconds / row.tar.cpuSeconds;
    rows.push(row);
  }
  console.log(
    'image                            tar s  tar cpu  skiff s  skiff cpu  RSS MiB  ratio  cpu ratio  target',
  );
  for (const r of rows)
    console.log(
      `${r.image.name.padEnd(32)} ${fmt(r.tar.seconds).padStart(5)} ${fmt(r.tar.cpuSeconds).padStart(8)} ${fmt(r.skiff.seconds).padStart(8)} ${fmt(r.skiff.cpuSeconds).padStart(10)} ${fmt(r.skiff.rssMiB, 0).padStart(8)} ${fmt(r.ratio).padStart(6)} ${fmt(r.cpuRatio).padStart(10)}  ≤ ${TARGET}`,
    );
  if (BEFORE)
    for (const r of rows)
      console.log(
        `${r.image.name}: before (${BEFORE}) ${fmt(r.before.seconds)} s, ${fmt(r.before.cpuSeconds)} s CPU, ratio to tar ${fmt(r.before.seconds / r.tar.seconds)}, CPU ratio ${fmt(r.before.cpuSeconds / r.tar.cpuSeconds)}`,
      );
  console.log('trees identical in every run');
  console.log(`results: ${writeResults('unpack', { runs: RUNS, target: TARGET, rows })}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

function summary(runs) {
  return {
    seconds: median(runs.map((r) => r.seconds)),
    cpuSeconds: median(runs.map((r) => r.cpuSeconds)),
    rssMiB: median(runs.map((r) => r.rssMiB)),
  };
}

/**
 * `files` small files (0-4 KiB of text) in two layers: 90% in 1,000 directories of the first, the
 * rest new in the second, with some symlinks and hard links; the per-file cost at 10x the files of
 * the image above.
 */
function buildManyFilesImage(dir, files) {
  const line = 'the quick brown fox jumps over the lazy dog 0123456789\n';
  const trees = [path.join(dir, 'many-0'), path.join(dir, 'many-1')];
  const lower = Math.floor(files * 0.9);
  const made = new Set();
  for (let i = 0; i < files; i++) {
    const layer = i < lower ? 0 : 1;
    const sub = path.join(trees[layer], `d${String(i % 1000).padStart(3, '0')}`, `e${i % 7}`);
    if (!made.has(sub)) fs.mkdirSync(sub, { recursive: true });
    made.add(sub);
    const file = path.join(sub, `f${i}`);
    // Links to a file 7000 before, in the same directory of the same layer.
    const linkable = i > 7000 && i < lower && (i - 7000) % 97 !== 0;
    if (i % 97 === 0 && linkable) fs.symlinkSync(`f${i - 7000}`, file);
    else if (i % 101 === 0 && linkable) fs.linkSync(path.join(sub, `f${i - 7000}`), file);
    else fs.writeFileSync(file, line.repeat((i * 7919) % 75).slice(0, (i * 7919) % 4096));
  }
  const tars = trees.map((tree, i) => {
    const tar = path.join(dir, `many-${i}.tar`);
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', tree, '-cf', tar, '.']);
    fs.rmSync(tree, { recursive: true, force: true });
    return tar;
  });
  const layout = path.join(dir, 'many-oci');
  writeLayout(
    layout,
    [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: tars })],
    'latest',
  );
  return { layout, tars, bytes: tars.reduce((sum, t) => sum + fs.statSync(t).size, 0), files };
}

/**
 * Paths whose type, mode, owner, size, content, link target, link count or mtime differ. The
 * directories tar creates for parents its archive does not list (usr, usr/share) have no time to
 * agree on: their times are not compared.
 */
function compare(a, b, implied = new Set(['usr', 'usr/share'])) {
  const left = describe(a);
  const right = describe(b);
  const differences = [];
  for (const key of new Set([...left.keys(), ...right.keys()])) {
    const [l, r] = [left.get(key), right.get(key)];
    const strip = (d) => (d && implied.has(key) ? { ...d, mtime: 0 } : d);
    if (JSON.stringify(strip(l)) !== JSON.stringify(strip(r))) differences.push(key);
  }
  return differences;
}

function describe(root) {
  const out = new Map();
  const walk = (rel) => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const child = rel ? `${rel}/${name}` : name;
      const full = path.join(root, child);
      const st = fs.lstatSync(full);
      out.set(child, {
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        nlink: st.isDirectory() ? 0 : st.nlink,
        size: st.isDirectory() ? 0 : st.size,
        link: st.isSymbolicLink() ? fs.readlinkSync(full) : undefined,
        sha256: st.isFile()
          ? crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')
          : undefined,
      });
      if (st.isDirectory()) walk(child);
    }
  };
  walk('');
  return out;
}
