// Shared by the benchmark scripts: timing with peak RSS, containers-storage set-up, the big image.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePlatform, writeImage, writeLayout } from '../fixtures/lib/mkimage.mjs';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const SKIFF = path.join(ROOT, 'bin/run.js');
export const SKOPEO = 'skopeo';
export const MODERN_SKOPEO = '/opt/skopeo-modern/skopeo';
export const RUNS = Number(process.env.BENCH_RUNS ?? 5);

/** GNU time's format: wall seconds, peak RSS (KiB), user and system CPU seconds. */
const TIME_FORMAT = ['-f', '%e %M %U %S'];

/** What GNU time printed last on stderr, as seconds, peak RSS (MiB) and CPU seconds. */
function parseTime(stderr) {
  const [seconds, kib, user, system] = (stderr.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
  return { seconds, rssMiB: kib / 1024, cpuSeconds: user + system };
}

/** Runs a command under GNU time: wall seconds, peak RSS (MiB), CPU seconds; throws on failure. */
export function timed(command, args, env = {}) {
  const result = spawnSync('/usr/bin/time', [...TIME_FORMAT, command, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  return { ...parseTime(result.stderr), stdout: result.stdout };
}

/**
 * The same, without blocking this process: needed when the command talks to a server running in
 * it (the counting proxy).
 */
export function timedAsync(command, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', [...TIME_FORMAT, command, ...args], {
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) reject(new Error(`${command} ${args.join(' ')} failed (${status}):\n${stderr}`));
      else resolve({ ...parseTime(stderr), stdout });
    });
  });
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A private containers-storage (overlay) for one run; `partial` enables zstd:chunked partial pulls. */
export function containersStorage(partial = false) {
  const dir = tempDir('skiff-bench-cs-');
  const conf = path.join(dir, 'storage.conf');
  fs.writeFileSync(
    conf,
    [
      '[storage]',
      'driver = "overlay"',
      `graphroot = "${dir}/graph"`,
      `runroot = "${dir}/run"`,
      '[storage.options]',
      `pull_options = {enable_partial_images = "${partial}", use_hard_links = "false", convert_images = "false"}`,
      '',
    ].join('\n'),
  );
  return {
    dir,
    env: { CONTAINERS_STORAGE_CONF: conf },
    remove() {
      // containers-storage leaves its overlay directory bind-mounted: unmount before removing.
      const mounts = fs
        .readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1])
        .filter((m) => m?.startsWith(dir));
      for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The ~150 MB, ~9k-file benchmark image (/usr/include and /usr/share/perl) as an uncompressed OCI
 * layout: one layer per list of roots (one layer by default).
 */
export function buildBigImage(work, layers = [['usr/include', 'usr/share/perl']]) {
  const tars = layers.map((roots, i) => {
    const tar = path.join(work, `big-${i}.tar`);
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', '/', '-cf', tar, ...roots]);
    return tar;
  });
  const files = tars.reduce(
    (sum, tar) =>
      sum +
      Number(
        execFileSync('bash', ['-c', `tar -tf ${tar} | grep -cv '/$'`])
          .toString()
          .trim(),
      ),
    0,
  );
  return { ...singleImageLayout(path.join(work, 'big-oci'), tars), files };
}

/**
 * An image whose layers do not compress: `layers` layers of `filesPerLayer` random files of
 * `fileBytes` each, so the blobs a registry moves are as large as the tars.
 */
export function buildRandomImage(work, { layers = 2, filesPerLayer = 5, fileBytes = 15e6 } = {}) {
  const tars = Array.from({ length: layers }, (_, i) => {
    const dir = path.join(work, `random-${i}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < filesPerLayer; f++) {
      const out = fs.openSync(path.join(dir, `file-${f}`), 'w');
      execFileSync('head', ['-c', String(fileBytes), '/dev/urandom'], { stdio: ['ignore', out, 'inherit'] });
      fs.closeSync(out);
    }
    const tar = path.join(work, `random-${i}.tar`);
    execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', dir, '-cf', tar, '.']);
    return tar;
  });
  return singleImageLayout(path.join(work, 'random-oci'), tars);
}

/** A linux/amd64 image of these layer tars in an OCI layout at `layout`, tagged latest. */
function singleImageLayout(layout, tars) {
  writeLayout(
    layout,
    [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: tars })],
    'latest',
  );
  return { layout, tars, bytes: tars.reduce((sum, t) => sum + fs.statSync(t).size, 0) };
}

export function skopeo(binary, args, env = {}) {
  execFileSync(binary, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * `skopeo copy … docker://…` that pushes the layers in the --dest-compress-format asked for.
 * c/image's blob-info cache (root's: /var/lib/containers/cache) remembers each compressed variant
 * of an uncompressed layer, and `skopeo copy` (it has no --force-compression; podman push has)
 * reuses any variant the destination already holds, whatever format was asked: a zstd:chunked push
 * after a gzip push of the same tars yielded gzip layers, and both tools then pulled v2 whole. So
 * each push gets an empty cache of its own (c/image keeps a rootless user's under $XDG_DATA_HOME).
 */
export function skopeoPush(binary, args) {
  const cache = tempDir('skiff-bench-blob-cache-');
  try {
    skopeo(binary, args, { _CONTAINERS_ROOTLESS_UID: '1', XDG_DATA_HOME: cache });
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

export function writeResults(name, results) {
  const dir = path.join(ROOT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ node: process.version, ...results }, null, 2)}\n`);
  return file;
}

export const fmt = (n, digits = 2) => Number(n).toFixed(digits);

/**
 * The partial-pull benchmark image, v1 and v2 as current zstd:chunked (skopeo 1.18), pushed to
 * `registryHost` as bench/app:v1 and :v2. Returns what v2 changed.
 */
export function pushPartialImages(work, registryHost) {
  const { tree, changed } = buildPartialTrees(work);
  for (const version of ['v1', 'v2']) {
    const tar = path.join(work, `${version}.tar`);
    // -b1 and a private blob cache: see skopeoPush and bench/big.mjs (skopeo 1.18 cannot partially
    // pull its own zstd:chunked of a tar padded to a 10 KiB record).
    execFileSync('tar', [
      '--sort=name',
      '--numeric-owner',
      '-b1',
      '-C',
      path.join(tree, version),
      '-cf',
      tar,
      '.',
    ]);
    const layout = path.join(work, `${version}-oci`);
    writeLayout(
      layout,
      [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: [tar] })],
      'latest',
    );
    skopeoPush(MODERN_SKOPEO, [
      'copy',
      '-q',
      '--dest-tls-verify=false',
      '--dest-compress-format',
      'zstd:chunked',
      `oci:${layout}:latest`,
      `docker://${registryHost}/bench/app:${version}`,
    ]);
  }
  return changed;
}

/** v1: /usr/include and /usr/share/perl; v2: 3% of the files edited, 20 added, 20 removed. */
function buildPartialTrees(dir) {
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
