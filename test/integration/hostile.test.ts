// Issue 2: hostile and broken inputs each give the docs/design.md §9 exit code and one clear line, and leave
// the store byte-for-byte as it was.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { diffSnapshots, snapshotStore } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

const registry = inject('registry');
let work: { dir: string; cleanup: () => void };
let store: string;

beforeAll(async () => {
  work = tempDir('skiff-hostile-');
  store = path.join(work.dir, 'store');
  // A store that already holds an image, so "unchanged" means something.
  const seeded = await runCli(['pull', `${registry}/fixtures/gzip:latest`], { SKIFF_STORE: store });
  expect(seeded.code).toBe(0);
});
afterAll(() => work.cleanup());

let counter = 0;
function layout(options: Parameters<typeof writeTestLayout>[1]) {
  return writeTestLayout(path.join(work.dir, `layout-${counter++}`), options);
}

/** Runs a pull expected to fail; checks exit code, one stderr line containing `mentions`, store unchanged. */
async function expectRefused(ref: string, exitCode: number, mentions: string[]) {
  const before = snapshotStore(store);
  const result = await runCli(['pull', ref], { SKIFF_STORE: store });
  expect(result.code, result.stderr).toBe(exitCode);
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  for (const m of mentions) expect(lines[0]).toContain(m);
  expect(diffSnapshots(before, snapshotStore(store))).toEqual([]);
}

const okTar = () =>
  makeTar([
    { name: 'etc/', type: 'dir' },
    { name: 'etc/ok', content: 'fine\n' },
  ]);

describe('hostile and broken images', () => {
  it('a blob whose bytes do not match its digest: exit 4', async () => {
    const l = layout({ layers: [{ tar: okTar() }] });
    // Valid gzip of different content: only the digest check can catch it.
    fs.writeFileSync(
      l.layers[0]!.file,
      zlib.gzipSync(makeTar([{ name: 'etc/other', content: 'swapped\n' }])),
    );
    await expectRefused(`oci:${l.dir}:latest`, 4, [l.layers[0]!.digest.slice(0, 19), 'digest']);
  });

  it('a layer whose DiffID does not match the config: exit 4', async () => {
    const l = layout({ layers: [{ tar: okTar(), diffID: `sha256:${'ab'.repeat(32)}` }] });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['DiffID mismatch', l.layers[0]!.digest.slice(0, 19)]);
  });

  it('a tar entry climbing out with ../: exit 4', async () => {
    const l = layout({ layers: [{ tar: makeTar([{ name: '../escape', content: 'x' }]) }] });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['../escape']);
  });

  it('a tar entry with an absolute path: exit 4', async () => {
    const l = layout({ layers: [{ tar: makeTar([{ name: '/etc/passwd', content: 'x' }]) }] });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['/etc/passwd', 'absolute']);
  });

  it('a symlink escape (a file written through a symlink of the same layer): exit 4', async () => {
    const tar = makeTar([
      { name: 'evil', type: 'symlink', linkname: '/etc' },
      { name: 'evil/passwd', content: 'root::0:0::/:/bin/sh\n' },
    ]);
    const l = layout({ layers: [{ tar }] });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['evil/passwd', 'symlink']);
  });

  it('a hard link pointing outside the root: exit 4', async () => {
    const l = layout({
      layers: [{ tar: makeTar([{ name: 'shadow', type: 'hardlink', linkname: '../../etc/shadow' }]) }],
    });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['shadow']);
  });

  it('a manifest over 4 MiB: exit 4', async () => {
    const l = layout({
      layers: [{ tar: okTar() }],
      manifestExtra: { annotations: { padding: 'x'.repeat(4 * 1024 * 1024 + 1) } },
    });
    await expectRefused(`oci:${l.dir}:latest`, 4, ['limit']);
  });

  it('an unknown layer media type: exit 4', async () => {
    const l = layout({ layers: [{ tar: okTar(), mediaType: 'application/vnd.example.unknown' }] });
    await expectRefused(`oci:${l.dir}:latest`, 4, [
      'application/vnd.example.unknown',
      l.layers[0]!.digest.slice(0, 19),
    ]);
  });

  it('a corrupt gzip stream: exit 4', async () => {
    const l = layout({
      layers: [{ tar: okTar(), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    });
    // Keep the digest honest (so only decompression can fail) by rewriting the layout around garbage.
    const garbage = Buffer.from('this is not gzip at all');
    const broken = layout({
      layers: [{ tar: garbage, compress: 'none', mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    });
    expect(l.dir).not.toBe(broken.dir);
    await expectRefused(`oci:${broken.dir}:latest`, 4, ['gzip']);
  });
});

describe('bad references and missing things', () => {
  it('an invalid reference: exit 1 naming it', async () => {
    await expectRefused('docker://Bad/UPPER:case', 1, ['Bad/UPPER']);
  });

  it('an unknown repository: exit 2', async () => {
    await expectRefused(`${registry}/no/such/repo:latest`, 2, ['no/such/repo']);
  });

  it('an unknown tag: exit 2', async () => {
    await expectRefused(`${registry}/fixtures/gzip:nope`, 2, ['nope']);
  });

  it('a missing layout: exit 2', async () => {
    await expectRefused(`oci:${path.join(work.dir, 'absent')}:latest`, 2, ['absent']);
  });

  it('an unreachable registry: exit 5', async () => {
    const result = await runCli(['pull', '127.0.0.1:9/x/y:z', '--retry-times', '1', '--retry-delay', '10'], {
      SKIFF_STORE: store,
    });
    expect(result.code).toBe(5);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});
