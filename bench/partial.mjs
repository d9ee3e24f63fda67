#!/usr/bin/env node
// Issue 3's benchmark: a ~150 MB, ~9k-file image as current zstd:chunked, v1 then v2 where v2
// changes 3% of the files (and adds and removes a few). skiff and skopeo 1.18 (containers-storage,
// overlay, enable_partial_images) each pull v1 then v2; measured for v2: bytes the registry served
// (counted at a proxy in front of it), wall time, peak RSS. One run each by default
// (BENCH_RUNS for more). Not a test: `node bench/partial.mjs`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startCountingProxy } from '../scripts/lib/counting-proxy.mjs';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
  containersStorage,
  fmt,
  MODERN_SKOPEO,
  median,
  pushPartialImages,
  SKIFF,
  tempDir,
  timedAsync,
  writeResults,
} from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const work = tempDir('skiff-bench-partial-');
const registry = await startRegistry();
const proxy = await startCountingProxy(registry.host);
try {
  const changed = pushPartialImages(work, registry.host);
  const blobSize = (version) => {
    const m = JSON.parse(
      execFileSync(MODERN_SKOPEO, [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${registry.host}/bench/app:${version}`,
      ]).toString(),
    );
    return m.layers.reduce((sum, l) => sum + l.size, 0);
  };
  console.log(
    `image: ${changed.files} files, ${changed.changed} changed, ${changed.added} added, ${changed.removed} removed; v2 blob ${fmt(blobSize('v2') / 1e6, 1)} MB`,
  );
  const ref = (version) => `${proxy.host}/bench/app:${version}`;

  const skiffRuns = [];
  const skopeoRuns = [];
  for (let run = 0; run < RUNS; run++) {
    const store = path.join(work, `store-${run}`);
    await timedAsync(process.execPath, [SKIFF, 'pull', ref('v1'), '--store', store]);
    proxy.reset();
    const v2 = await timedAsync(process.execPath, [SKIFF, 'pull', ref('v2'), '--store', store, '--json']);
    skiffRuns.push({
      ...v2,
      bytes: proxy.blobBytes(),
      reported: JSON.parse(v2.stdout).bytesFetched,
      method: JSON.parse(v2.stdout).layers[0].method,
    });
    fs.rmSync(store, { recursive: true, force: true });

    const storage = containersStorage(true);
    const copy = (version) => [
      'copy',
      '-q',
      '--src-tls-verify=false',
      `docker://${ref(version)}`,
      `containers-storage:bench/app:${version}`,
    ];
    await timedAsync(MODERN_SKOPEO, copy('v1'), storage.env);
    proxy.reset();
    skopeoRuns.push({
      ...(await timedAsync(MODERN_SKOPEO, copy('v2'), storage.env)),
      bytes: proxy.blobBytes(),
    });
    storage.remove();
  }
  const m = (runs, key) => median(runs.map((r) => r[key]));
  const results = {
    image: { ...changed, v2BlobBytes: blobSize('v2') },
    runs: RUNS,
    skiff: {
      bytes: m(skiffRuns, 'bytes'),
      reportedBytes: m(skiffRuns, 'reported'),
      seconds: m(skiffRuns, 'seconds'),
      peakRssMiB: Math.max(...skiffRuns.map((r) => r.rssMiB)),
      method: skiffRuns[0].method,
    },
    skopeo: {
      bytes: m(skopeoRuns, 'bytes'),
      seconds: m(skopeoRuns, 'seconds'),
      peakRssMiB: Math.max(...skopeoRuns.map((r) => r.rssMiB)),
    },
  };
  results.bytesRatio = results.skiff.bytes / results.skopeo.bytes;
  results.timeRatio = results.skiff.seconds / results.skopeo.seconds;
  console.log(
    `v2: skiff ${fmt(results.skiff.bytes / 1e6, 3)} MB served (${results.skiff.method}), ${fmt(results.skiff.seconds)} s, peak RSS ${fmt(results.skiff.peakRssMiB, 0)} MiB | skopeo 1.18 ${fmt(results.skopeo.bytes / 1e6, 3)} MB, ${fmt(results.skopeo.seconds)} s, peak RSS ${fmt(results.skopeo.peakRssMiB, 0)} MiB | bytes ratio ${fmt(results.bytesRatio)}, time ratio ${fmt(results.timeRatio)}`,
  );
  console.log(`results: ${writeResults('partial', results)}`);
} finally {
  await proxy.stop();
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
