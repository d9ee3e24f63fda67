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

/** Runs a command under GNU time: wall seconds and peak RSS (MiB); throws on failure. */
export function timed(command, args, env = {}) {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = result.stderr.trim().split('\n').at(-1) ?? '';
  const [seconds, kib] = last.split(' ').map(Number);
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  return { seconds, rssMiB: kib / 1024, stdout: result.stdout };
}

/**
 * The same, without blocking this process: needed when the command talks to a server running in
 * it (the counting proxy).
 */
export function timedAsync(command, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', command, ...args], {
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
      const [seconds, kib] = (stderr.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
      if (status !== 0) reject(new Error(`${command} ${args.join(' ')} failed (${status}):\n${stderr}`));
      else resolve({ seconds, rssMiB: kib / 1024, stdout });
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

export function writeResults(name, results) {
  const dir = path.join(ROOT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

export const fmt = (n, digits = 2) => Number(n).toFixed(digits);
