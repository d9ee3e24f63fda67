#!/usr/bin/env node
// Issue 15's unpack benchmark: `skiff unpack` of the two-layer benchmark image (/usr/include;
// /usr/share/perl) against `tar -x` of the same layer tars, both from the page cache into fresh
// directories, interleaved, medians of BENCH_RUNS runs (default 5). The trees are compared after
// each pair (types, modes, owners, times, link counts, contents): a fast unpack of another tree
// would be no result. Not a test: run `node bench/unpack.mjs` after `npm run build`.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildBigImage, fmt, median, RUNS, SKIFF, tempDir, timed, writeResults } from './lib.mjs';

const TARGET = 1.5;
const work = tempDir('skiff-bench-unpack-');
try {
  const image = buildBigImage(work, [['usr/include'], ['usr/share/perl']]);
  const store = path.join(work, 'store');
  execFileSync(process.execPath, [SKIFF, 'pull', `oci:${image.layout}:latest`, '--store', store], {
    stdio: 'ignore',
  });
  const ref = `oci:${image.layout}:latest`;
  console.log(`image: ${fmt(image.bytes / 1e6, 1)} MB in 2 layers, ${image.files} files; ${RUNS} runs each`);
  const tar = [];
  const skiff = [];
  for (let run = 0; run < RUNS; run++) {
    const byTar = path.join(work, `tar-${run}`);
    fs.mkdirSync(byTar);
    const extract = image.tars.map((t) => `tar -xf ${t} -C ${byTar}`).join(' && ');
    tar.push(timed('bash', ['-c', extract]));
    const bySkiff = path.join(work, `skiff-${run}`);
    skiff.push(timed(process.execPath, [SKIFF, 'unpack', ref, bySkiff, '--store', store]));
    const differences = compare(byTar, bySkiff);
    if (differences.length > 0) throw new Error(`trees differ: ${differences.slice(0, 5).join(', ')}`);
    fs.rmSync(byTar, { recursive: true, force: true });
    fs.rmSync(bySkiff, { recursive: true, force: true });
  }
  const row = (runs) => ({
    seconds: median(runs.map((r) => r.seconds)),
    cpuSeconds: median(runs.map((r) => r.cpuSeconds)),
    rssMiB: median(runs.map((r) => r.rssMiB)),
  });
  const results = {
    image: { bytes: image.bytes, files: image.files },
    runs: RUNS,
    tar: row(tar),
    skiff: row(skiff),
  };
  const ratio = results.skiff.seconds / results.tar.seconds;
  console.log('what            seconds  cpu s  peak RSS MiB');
  for (const [name, r] of [
    ['tar -x', results.tar],
    ['skiff unpack', results.skiff],
  ])
    console.log(
      `${name.padEnd(15)} ${fmt(r.seconds).padStart(7)} ${fmt(r.cpuSeconds).padStart(6)} ${fmt(r.rssMiB, 0).padStart(13)}`,
    );
  console.log(`ratio ${fmt(ratio)} (target ≤ ${TARGET}); trees identical in every run`);
  console.log(`results: ${writeResults('unpack', { ...results, ratio, target: TARGET })}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

/**
 * Paths whose type, mode, owner, size, content, link target, link count or mtime differ. The
 * directories tar creates for parents its archive does not list (usr, usr/share) have no time to
 * agree on: their times are not compared.
 */
function compare(a, b) {
  const left = describe(a);
  const right = describe(b);
  const implied = new Set(['usr', 'usr/share']);
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
