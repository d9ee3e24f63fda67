#!/usr/bin/env node
// Issue 5's benchmark: registry-to-registry copy of a ~150 MB two-layer image (gzip), skiff mirror
// against Debian's skopeo copy, each into a fresh destination registry, medians of BENCH_RUNS
// (default 5); then the re-run of a completed mirror (it should transfer nothing). Not a test:
// `node bench/mirror.mjs`. BENCH_MIRROR_IMAGE=random copies ~150 MB of incompressible layers
// instead (blobs as large as the tars), where the registries' own work dominates.
import fs from 'node:fs';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
  buildBigImage,
  buildRandomImage,
  fmt,
  median,
  RUNS,
  SKIFF,
  SKOPEO,
  skopeo,
  tempDir,
  timed,
  writeResults,
} from './lib.mjs';

const work = tempDir('skiff-bench-mirror-');
const source = await startRegistry();
try {
  const { layout, bytes } =
    process.env.BENCH_MIRROR_IMAGE === 'random'
      ? buildRandomImage(work)
      : buildBigImage(work, [['usr/include'], ['usr/share/perl']]);
  skopeo(SKOPEO, [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    '--dest-compress',
    '--dest-compress-format',
    'gzip',
    `oci:${layout}:latest`,
    `docker://${source.host}/bench/img:v1`,
  ]);
  const src = `docker://${source.host}/bench/img:v1`;
  console.log(`image: 2 layers, ${fmt(bytes / 1e6, 1)} MB uncompressed; ${RUNS} runs each`);

  const skiffRuns = [];
  const skopeoRuns = [];
  const reruns = [];
  for (let run = 0; run < RUNS; run++) {
    for (const [tool, runs] of [
      ['skiff', skiffRuns],
      ['skopeo', skopeoRuns],
    ]) {
      const dest = await startRegistry();
      const dst = `docker://${dest.host}/bench/img:v1`;
      if (tool === 'skiff') {
        runs.push(timed(process.execPath, [SKIFF, 'mirror', src, dst, '--json']));
        const again = timed(process.execPath, [SKIFF, 'mirror', src, dst, '--json']);
        reruns.push({ ...again, result: JSON.parse(again.stdout.trim().split('\n')[0]) });
      } else {
        runs.push(
          timed(SKOPEO, ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', src, dst]),
        );
      }
      await dest.stop();
    }
  }
  const m = (runs) => median(runs.map((r) => r.seconds));
  const results = {
    runs: RUNS,
    skiffSeconds: m(skiffRuns),
    skopeoSeconds: m(skopeoRuns),
    ratio: m(skiffRuns) / m(skopeoRuns),
    rerunSeconds: m(reruns),
    rerunBlobsCopied: reruns[0].result.blobsCopied,
    rerunUpToDate: reruns[0].result.upToDate,
    skiffPeakRssMiB: Math.max(...skiffRuns.map((r) => r.rssMiB)),
  };
  console.log(
    `first copy: skiff ${fmt(results.skiffSeconds)} s (peak RSS ${fmt(results.skiffPeakRssMiB, 0)} MiB) | skopeo ${fmt(results.skopeoSeconds)} s | ratio ${fmt(results.ratio)}; re-run: skiff ${fmt(results.rerunSeconds)} s, blobs copied ${results.rerunBlobsCopied}, up to date ${results.rerunUpToDate}`,
  );
  console.log(`results: ${writeResults('mirror', results)}`);
} finally {
  await source.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
