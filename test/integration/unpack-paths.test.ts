// unpack remembers the directories it has walked (src/unpack/rootfs.ts), so a file's parents are
// looked at once. A directory that a later layer replaces (here by a symlink pointing out of the
// tree) must be forgotten: a file beneath it then resolves through the symlink inside the root,
// as if chrooted, and nothing is written outside the target.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';

const work = tempDir('skiff-unpack-paths-');
afterAll(() => work.cleanup());

describe('unpack of a directory that a later layer replaces', () => {
  it('resolves what comes beneath it afresh, inside the root', async () => {
    const layout = writeTestLayout(path.join(work.dir, 'image'), {
      layers: [
        {
          tar: makeTar([
            { name: 'a/', type: 'dir' },
            { name: 'a/x', content: 'lower\n' },
          ]),
        },
        { tar: makeTar([{ name: 'a', type: 'symlink', linkname: '../../escape' }]) },
        { tar: makeTar([{ name: 'a/y', content: 'upper\n' }]) },
      ],
    });
    const image = `oci:${layout.dir}:latest`;
    const store = path.join(work.dir, 'store');
    expect((await runCli(['pull', image], { SKIFF_STORE: store })).code).toBe(0);
    const parent = path.join(work.dir, 'out');
    fs.mkdirSync(parent);
    const target = path.join(parent, 'target');
    const outside = snapshot(work.dir);

    const result = await runCli(['unpack', image, target], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(0);
    expect(fs.readlinkSync(path.join(target, 'a'))).toBe('../../escape');
    expect(fs.readFileSync(path.join(target, 'escape/y'), 'utf8')).toBe('upper\n');
    expect(fs.existsSync(path.join(target, 'escape/x'))).toBe(false);
    const changed = diffSnapshots(outside, snapshot(work.dir)).filter((p) => !p.includes('out/target'));
    expect(changed).toEqual([]);
  });
});

// unpack creates each name exclusively and removes what a lower layer left there only when the
// creation says it exists (no lstat per entry): every kind of entry must still replace every kind
// of lower entry, and a lower symlink is replaced, never written through.
describe('unpack of names a later layer reuses without a whiteout', () => {
  it('replaces each lower entry by the upper one, never writing through a symlink', async () => {
    const layout = writeTestLayout(path.join(work.dir, 'reuse'), {
      layers: [
        {
          tar: makeTar([
            { name: 'target', content: 'kept\n' },
            { name: 'through', type: 'symlink', linkname: 'target' },
            { name: 'file', content: 'lower\n', mode: 0o600 },
            { name: 'to-dir', content: 'a file below\n' },
            { name: 'to-file/', type: 'dir' },
            { name: 'to-file/child', content: 'gone\n' },
            { name: 'to-link', content: 'lower\n' },
            { name: 'to-hardlink', content: 'lower\n' },
          ]),
        },
        {
          tar: makeTar([
            { name: 'through', content: 'upper\n' },
            { name: 'file', content: 'upper\n', mode: 0o640 },
            { name: 'to-dir/', type: 'dir' },
            { name: 'to-dir/child', content: 'in the dir\n' },
            { name: 'to-file', content: 'now a file\n' },
            { name: 'to-link', type: 'symlink', linkname: 'file' },
            { name: 'to-hardlink', type: 'hardlink', linkname: 'file' },
          ]),
        },
      ],
    });
    const image = `oci:${layout.dir}:latest`;
    const store = path.join(work.dir, 'reuse-store');
    expect((await runCli(['pull', image], { SKIFF_STORE: store })).code).toBe(0);
    const target = path.join(work.dir, 'reuse-out');

    const result = await runCli(['unpack', image, target], { SKIFF_STORE: store });
    expect(result.code, result.stderr).toBe(0);
    const read = (name: string) => fs.readFileSync(path.join(target, name), 'utf8');
    expect(read('target')).toBe('kept\n');
    expect(fs.lstatSync(path.join(target, 'through')).isFile()).toBe(true);
    expect(read('through')).toBe('upper\n');
    expect(read('file')).toBe('upper\n');
    expect(fs.statSync(path.join(target, 'file')).mode & 0o777).toBe(0o640);
    expect(read('to-dir/child')).toBe('in the dir\n');
    expect(read('to-file')).toBe('now a file\n');
    expect(fs.readlinkSync(path.join(target, 'to-link'))).toBe('file');
    expect(fs.statSync(path.join(target, 'to-hardlink')).ino).toBe(
      fs.statSync(path.join(target, 'file')).ino,
    );
  });
});
