#!/usr/bin/env node
// Issue 3's benchmark: a ~150 MB, ~9k-file image as current zstd:chunked, v1 then v2 where v2
// changes 3% of the files (and adds and removes a few). skiff and skopeo 1.18 (containers-storage,
// overlay, enable_partial_images) each pull v1 then v2; measured for v2: bytes the registry served
// (counted at a proxy in front of it), wall time, peak RSS. One run each by default
// (BENCH_RUNS for more). Not a test: `node bench/partial.mjs`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parsePlatform, writeImage, writeLayout } from '../fixtures/lib/mkimage.mjs';
import { startCountingProxy } from '../scripts/lib/counting-proxy.mjs';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
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

const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const work = tempDir('skiff-bench-partial-');
const registry = await startRegistry();
const proxy = await startCountingProxy(registry.host);
try {
  const { tree, changed } = buildTrees(work);
  for (const version of ['v1', 'v2']) {
    const tar = path.join(work, `${version}.tar`);
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', path.join(tree, version), '-cf', tar, '.']);
    const layout = path.join(work, `${version}-oci`);
    writeLayout(
      layout,
      [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: [tar] })],
      'latest',
    );
    skopeo(MODERN_SKOPEO, [
      'copy',
      '-q',
      '--dest-tls-verify=false',
      '--dest-compress-format',
      'zstd:chunked',
      `oci:${layout}:latest`,
      `docker://${registry.host}/bench/app:${version}`,
    ]);
  }
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

/** v1: /usr/include and /usr/share/perl; v2: 3% of the files edited, 20 added, 20 removed. */
function buildTrees(dir) {
  const tree = path.join(dir, 'trees');
  for (const version of ['v1', 'v2']) {
    fs.mkdirSync(path.join(tree, version, 'usr/share'), { recursive: true });
    execFileSync('cp', ['-a', '/usr/include', path.join(tree, version, 'usr/')]);
    execFileSync('cp', ['-a', '/usr/share/perl', path.join(tree, version, 'usr/share/')]);
  }
  const files = execFileSync('find', ['.', '-type', 'f'], { cwd: path.join(tree, 'v2') })
    .toString()
    .trim()
    .split('\n')
    .sort();
  let changed = 0;
  files.forEach((file, i) => {
    const target = path.join(tree, 'v2', file);
    if (i % 33 === 0) {
      fs.appendFileSync(target, `\n/* v2 change ${i} */\n`);
      changed++;
    } else if (i % 457 === 5) {
      fs.rmSync(target);
    }
  });
  const removed = files.filter((_, i) => i % 33 !== 0 && i % 457 === 5).length;
  for (let i = 0; i < 20; i++)
    fs.writeFileSync(
      path.join(tree, 'v2/usr/include', `skiff-added-${i}.h`),
      `/* added in v2: ${i} */\n`.repeat(200),
    );
  return { tree, changed: { files: files.length, changed, added: 20, removed } };
}
