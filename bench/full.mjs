#!/usr/bin/env node
// Issue 2's benchmark: a full pull of a ~150 MB, ~9k-file image (gzip and zstd) into a fresh store,
// against Debian's skopeo into containers-storage (overlay) and into an OCI layout. Medians of
// BENCH_RUNS runs (default 5), ratios, and skiff's peak RSS. Not a test: run `node bench/full.mjs`.
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../scripts/lib/registry.mjs';
import {
  buildBigImage,
  containersStorage,
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

const work = tempDir('skiff-bench-full-');
const registry = await startRegistry();
try {
  const image = buildBigImage(work);
  console.log(`image: ${fmt(image.bytes / 1e6, 1)} MB tar, ${image.files} files; ${RUNS} runs each`);
  const results = { image: { bytes: image.bytes, files: image.files }, runs: RUNS, formats: {} };
  for (const format of ['gzip', 'zstd']) {
    const ref = `${registry.host}/bench/big:${format}`;
    skopeo(SKOPEO, [
      'copy',
      '-q',
      '--dest-tls-verify=false',
      '--dest-compress',
      '--dest-compress-format',
      format,
      `oci:${image.layout}:latest`,
      `docker://${ref}`,
    ]);
    const skiff = [];
    const cs = [];
    const oci = [];
    for (let run = 0; run < RUNS; run++) {
      const store = path.join(work, `store-${format}-${run}`);
      skiff.push(timed(process.execPath, [SKIFF, 'pull', ref, '--store', store]));
      fs.rmSync(store, { recursive: true, force: true });

      const storage = containersStorage();
      cs.push(
        timed(
          SKOPEO,
          [
            'copy',
            '-q',
            '--src-tls-verify=false',
            `docker://${ref}`,
            `containers-storage:bench/big:${format}`,
          ],
          storage.env,
        ),
      );
      storage.remove();

      const dir = path.join(work, `oci-${format}-${run}`);
      oci.push(
        timed(SKOPEO, ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:latest`]),
      );
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const m = (rs) => median(rs.map((r) => r.seconds));
    const row = {
      skiffSeconds: m(skiff),
      skopeoContainersStorageSeconds: m(cs),
      skopeoOciSeconds: m(oci),
      ratioVsContainersStorage: m(skiff) / m(cs),
      ratioVsOci: m(skiff) / m(oci),
      skiffPeakRssMiB: Math.max(...skiff.map((r) => r.rssMiB)),
    };
    results.formats[format] = row;
    console.log(
      `${format}: skiff ${fmt(row.skiffSeconds)} s (peak RSS ${fmt(row.skiffPeakRssMiB, 0)} MiB) | skopeo→containers-storage ${fmt(row.skopeoContainersStorageSeconds)} s (ratio ${fmt(row.ratioVsContainersStorage)}) | skopeo→oci ${fmt(row.skopeoOciSeconds)} s (ratio ${fmt(row.ratioVsOci)})`,
    );
  }
  console.log(`results: ${writeResults('full', results)}`);
} finally {
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
