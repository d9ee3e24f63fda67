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
