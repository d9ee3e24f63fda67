#!/usr/bin/env node
// The demo (`npm run demo`): a real local registry (Debian's docker-registry), real images written
// by skopeo, and skiff pulling them: v1 of an app in full, then v2 partially, with the savings
// printed; then the fallbacks skiff reports for other formats. Run after `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry } from './lib/registry.mjs';

const root = path.resolve(import.meta.dirname, '..');
const fixtures = path.join(root, 'fixtures/images');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-demo-'));
const store = path.join(work, 'store');

const say = (text) => console.log(`\n\u001b[1m▶ ${text}\u001b[0m`);
function skiff(...args) {
  return run(true, ...args);
}
/** JSON steps print a one-line summary instead of the whole report. */
function skiffJson(...args) {
  return JSON.parse(run(false, ...args));
}
function run(echo, ...args) {
  console.log(`$ skiff ${args.join(' ')}`);
  const result = spawnSync(process.execPath, [path.join(root, 'bin/run.js'), ...args], {
    env: { ...process.env, SKIFF_STORE: store },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (echo) process.stdout.write(result.stdout);
  if (result.status !== 0) throw new Error(`skiff ${args[0]} exited ${result.status}`);
  return result.stdout;
}
function push(layout, ref, extra = []) {
  execFileSync('skopeo', [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    '--preserve-digests',
    ...extra,
    layout,
    `docker://${ref}`,
  ]);
}

console.log(`skiff demo on Node.js ${process.version}`);
say('starting a real registry (Debian docker-registry) on a free loopback port');
const registry = await startRegistry();
try {
  console.log(`registry at ${registry.host}, store at ${store}`);
  say('pushing images written by skopeo: an app as zstd:chunked (v1, v2), a gzip image, a multi-arch index');
  push(`oci:${fixtures}/demo-v1:latest`, `${registry.host}/demo/app:v1`);
  push(`oci:${fixtures}/demo-v2:latest`, `${registry.host}/demo/app:v2`);
  push(`oci:${fixtures}/gzip:latest`, `${registry.host}/demo/base:gzip`);
  push(`oci:${fixtures}/multi:latest`, `${registry.host}/demo/multi:latest`, ['--all']);

  say('pull v1 into an empty store: nothing to reuse, so one streaming GET (no-saving)');
  skiff('pull', `${registry.host}/demo/app:v1`);

  say('pull v2: only the changed files and chunks are fetched, the tar is rebuilt and its DiffID proven');
  skiff('pull', `${registry.host}/demo/app:v2`);

  say('the same plan as JSON, without fetching any layer body (v2 is stored now, so: reuse)');
  const plan = skiffJson('pull', '--dry-run', '--json', `${registry.host}/demo/app:v2`);
  console.log(
    `(layers: ${plan.layers.map((l) => `${l.method}${l.reasons.length ? ` [${l.reasons}]` : ''}`).join(', ')})`,
  );

  say(
    'convert-only refuses to fall back where the strategy table says so: an encrypted image (its layers not yet stored) fails before anything is committed',
  );
  const refused = spawnSync(
    process.execPath,
    [path.join(root, 'bin/run.js'), 'pull', '--mode', 'convert-only', `oci:${fixtures}/encrypted-rsa:latest`],
    {
      env: { ...process.env, SKIFF_STORE: store },
      encoding: 'utf8',
    },
  );
  console.log(`exit code ${refused.status}: ${refused.stderr.trim()}`);

  say('a gzip image is not chunked: a full pull, and the report says why');
  skiff('pull', `${registry.host}/demo/base:gzip`);

  say(
    'platform selection from an index is deterministic: linux/arm64 → v8, linux/arm → the best of v7/v6/v5',
  );
  for (const platform of ['linux/arm64', 'linux/arm']) {
    const report = skiffJson('pull', '--json', '--platform', platform, `${registry.host}/demo/multi:latest`);
    console.log(`→ ${report.platform} (${report.manifestDigest})`);
  }

  say('what the store holds, and v2 unpacked');
  skiff('images');
  skiff('unpack', `${registry.host}/demo/app:v2`, path.join(work, 'rootfs'));
  console.log(
    `${path.join(work, 'rootfs/app/VERSION')}: ${fs.readFileSync(path.join(work, 'rootfs/app/VERSION'), 'utf8').trim()}`,
  );
} finally {
  await registry.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
