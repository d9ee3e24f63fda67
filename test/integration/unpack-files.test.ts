// What unpack writes per file (src/unpack/index.ts, docs/unpack.md): content from the reader's two
// reused window buffers, the mode given at creation, owner and mode set only where the kernel did
// not already, times and extended attributes. Each is checked against what the layer says.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { END, entry, makeTar } from '../harness/tar-writer.js';

const work = tempDir('skiff-unpack-files-');
afterAll(() => work.cleanup());

const ROOT = process.getuid?.() === 0;

/** Pulls a one-image layout of these layer tars into a fresh store and unpacks it. */
async function pullAndUnpack(name: string, tars: Buffer[], env: Record<string, string> = {}) {
  const layout = writeTestLayout(path.join(work.dir, name), { layers: tars.map((tar) => ({ tar })) });
  const image = `oci:${layout.dir}:latest`;
  const store = path.join(work.dir, `${name}-store`);
  const pulled = await runCli(['pull', image], { SKIFF_STORE: store });
  expect(pulled.code, pulled.stderr).toBe(0);
  const target = path.join(work.dir, `${name}-out`);
  const result = await runCli(['unpack', image, target], { SKIFF_STORE: store, ...env });
  return { target, result };
}

describe('unpack of content that repeats after the read window has moved on', () => {
  // Identical files are one object, stored where the first was: the copies in b/ are read from
  // behind the window c/ needs, so windows are reused while one is still to be read from.
  it('writes every file with its own content', async () => {
    const distinct = (prefix: string, seed: number) =>
      Array.from({ length: 12 }, (_, i) => ({
        name: `${prefix}/${i}`,
        content: pseudoRandomBytes(200_000 + i, seed + i),
      }));
    const a = distinct('a', 100);
    const c = distinct('c', 200);
    const b = a.map((f, i) => ({ name: `b/${i}`, content: f.content }));
    const files = [...a, ...b, ...c, ...a.map((f, i) => ({ name: `d/${i}`, content: f.content }))];
    const { target, result } = await pullAndUnpack('repeats', [makeTar(files)]);

    expect(result.code, result.stderr).toBe(0);
    for (const f of files)
      expect(fs.readFileSync(path.join(target, f.name)).equals(f.content), f.name).toBe(true);
  });
});

describe('unpack of modes, owners and times', () => {
  // A file is created with its mode (less the umask) and chowned and chmodded only when that is not
  // already right: modes the umask hides, special bits, and other owners must still come out.
  it('gives every entry the mode, owner and time its header names', async () => {
    const owner = ROOT ? { uid: 1234, gid: 5678 } : {};
    const headers = [
      { name: 'plain', mode: 0o644 },
      { name: 'group-writable', mode: 0o664 },
      { name: 'world-writable', mode: 0o666 },
      { name: 'private', mode: 0o600 },
      { name: 'read-only', mode: 0o444 },
      { name: 'setuid', mode: 0o4755, ...owner },
      { name: 'setgid', mode: 0o2755, ...owner },
      { name: 'owned', mode: 0o640, ...owner },
      { name: 'empty', mode: 0o664, ...owner },
    ];
    const tar = Buffer.concat([
      entry({ name: 'sticky/', type: '5', mode: 0o1777, mtime: 1_600_000_000, ...owner }),
      ...headers.map((h, i) =>
        entry(
          { ...h, mtime: 1_600_000_100 + i },
          h.name === 'empty' ? Buffer.alloc(0) : Buffer.from(`${h.name}\n`),
        ),
      ),
      entry({ name: 'link', type: '2', linkname: 'plain', mtime: 1_600_000_200, ...owner }),
      END,
    ]);
    const { target, result } = await pullAndUnpack('modes', [tar]);

    expect(result.code, result.stderr).toBe(0);
    const uid = ROOT ? 1234 : process.getuid!();
    const gid = ROOT ? 5678 : process.getgid!();
    for (const [i, h] of headers.entries()) {
      const stat = fs.lstatSync(path.join(target, h.name));
      expect(stat.mode & 0o7777, h.name).toBe(h.mode);
      expect(stat.mtimeMs / 1000, h.name).toBe(1_600_000_100 + i);
      if ('uid' in h) expect([stat.uid, stat.gid], h.name).toEqual([uid, gid]);
      else if (ROOT) expect([stat.uid, stat.gid], h.name).toEqual([0, 0]);
    }
    const sticky = fs.lstatSync(path.join(target, 'sticky'));
    expect(sticky.mode & 0o7777).toBe(0o1777);
    expect(sticky.mtimeMs / 1000).toBe(1_600_000_000);
    expect([sticky.uid, sticky.gid]).toEqual([uid, gid]);
    const link = fs.lstatSync(path.join(target, 'link'));
    expect(link.mtimeMs / 1000).toBe(1_600_000_200);
    expect([link.uid, link.gid]).toEqual([uid, gid]);
  });
});

/** Whether the native xattr package resolves here (a dependency, or NODE_PATH). */
function xattrPackageAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('@napi-rs/xattr');
    return true;
  } catch {
    return false;
  }
}

describe('unpack of extended attributes (PAX SCHILY.xattr.*)', () => {
  const value = Buffer.from([0x68, 0x69, 0x00, 0xff, 0x0a]);
  const tar = () =>
    Buffer.concat([
      entry({ name: 'with-xattr' }, Buffer.from('content\n'), [['SCHILY.xattr.user.skiff', value]]),
      entry({ name: 'dir/', type: '5' }, Buffer.alloc(0), [['SCHILY.xattr.user.dir', 'on a directory']]),
      END,
    ]);

  it.runIf(xattrPackageAvailable())('sets them with setxattr, read back by getfattr', async () => {
    const { target, result } = await pullAndUnpack('xattrs', [tar()]);

    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const read = (file: string, name: string) =>
      execFileSync('getfattr', ['--only-values', '-n', name, path.join(target, file)]);
    expect(read('with-xattr', 'user.skiff').equals(value)).toBe(true);
    expect(read('dir', 'user.dir').toString()).toBe('on a directory');
  });

  it.runIf(!xattrPackageAvailable())('says which attributes were not applied, and why', async () => {
    const { target, result } = await pullAndUnpack('xattrs-missing', [tar()]);

    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'skiff: warning: with-xattr: extended attributes user.skiff not applied (@napi-rs/xattr is not installed)',
    );
    expect(fs.readFileSync(path.join(target, 'with-xattr'), 'utf8')).toBe('content\n');
  });
});
