// The session's pack (src/store/packs.ts) copies what it is given and keeps at most two batches
// waiting for the disk: a layer stages many files at once and layers share the pack, so batches
// queued behind a slow disk, each holding views of the decoder's windows, held tens of MiB
// (docs/memory.md).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { PackWriter, readObjectRange } from '../../src/store/index.js';
import { tempDir } from '../harness/cli.js';

const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}` as Digest;
const MiB = 1024 * 1024;

afterEach(() => vi.restoreAllMocks());

describe('PackWriter', () => {
  it('writes what it was given even when the caller changes its buffers afterwards', async () => {
    const work = tempDir('skiff-pack-');
    try {
      const writer = new PackWriter(path.join(work.dir, 'a.pack'));
      const pieces = [Buffer.from('first piece, '), Buffer.from('second piece')];
      await writer.add(digest(1), pieces);
      const whole = Buffer.from('a whole object');
      await writer.add(digest(2), whole);
      // A decoder's window reused, a buffer pool handing the memory out again.
      for (const b of [...pieces, whole]) b.fill(0x78);
      await writer.finish();
      const at = (d: Digest) => writer.locate(d)!;
      expect((await readObjectRange(at(digest(1)), 0, at(digest(1)).size)).toString()).toBe(
        'first piece, second piece',
      );
      expect((await readObjectRange(at(digest(2)), 0, at(digest(2)).size)).toString()).toBe('a whole object');
    } finally {
      work.cleanup();
    }
  });

  it('keeps appends waiting while two batches wait for the disk', async () => {
    const work = tempDir('skiff-pack-');
    const releases: Array<() => void> = [];
    const real = await fsp.open(path.join(work.dir, 'b.pack'), 'w');
    // A disk that takes each write only when the test says so.
    vi.spyOn(fsp, 'open').mockResolvedValue({
      writev: async (buffers: Buffer[], position: number) => {
        await new Promise<void>((resolve) => releases.push(resolve));
        return real.writev(buffers, position);
      },
      close: () => real.close(),
    } as unknown as fsp.FileHandle);
    try {
      const writer = new PackWriter(path.join(work.dir, 'b.pack'));
      // Each object fills a batch; none is awaited, as a layer's many staged files are not.
      const adds = [1, 2, 3, 4].map((i) => writer.add(digest(i), Buffer.alloc(MiB, i)));
      const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
      await settle();
      // One batch being written, one behind it; the third object waits, not copied into a third.
      expect(releases).toHaveLength(1);
      expect(writer.count).toBe(2);
      while (writer.count < 4 || releases.length > 0) {
        releases.shift()?.();
        await settle();
      }
      await Promise.all(adds);
      await writer.finish();
      vi.restoreAllMocks();
      expect(fs.statSync(path.join(work.dir, 'b.pack')).size).toBe(4 * MiB);
      const third = writer.locate(digest(3))!;
      expect((await readObjectRange(third, 0, 4)).equals(Buffer.alloc(4, 3))).toBe(true);
    } finally {
      work.cleanup();
    }
  });
});
