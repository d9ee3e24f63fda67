// Store.findObject: the partial pull's plan asks about every TOC file by its raw digest and keeps
// the answer as a number, which the rebuild turns back into a location. The answers must be what
// locate() says for the same content, packed or loose or absent, also after this process commits
// another pack (which re-sorts the loaded indexes).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Digest, sha256 } from '../../src/digest/index.js';
import { ingestLayer, LOOSE_OBJECT, Store } from '../../src/store/index.js';
import { tempDir } from '../harness/cli.js';
import { makeTar } from '../harness/tar-writer.js';

const work = tempDir('skiff-find-object-');
afterAll(() => work.cleanup());

const raw = (digest: Digest) => Buffer.from(digest.slice(7), 'hex');

/** Commits a layer of `files` through a session of its own: one pack, loose objects over 1 MiB. */
async function commit(store: Store, files: Array<[string, Buffer]>): Promise<void> {
  const session = await store.beginSession();
  const tar = makeTar(files.map(([name, content]) => ({ name, content })));
  const staged = await ingestLayer([tar], { session, provenance: 'computed' });
  await session.commitLayer(sha256(tar), staged);
  await session.end();
}

describe('Store.findObject', () => {
  it('answers as locate() does for packed, loose and absent content, across a later pack', async () => {
    const root = path.join(work.dir, 'store');
    const small = Buffer.from('small file\n'.repeat(50));
    const other = Buffer.from('another one\n'.repeat(30));
    const big = Buffer.alloc(1024 * 1024 + 5, 7);
    await commit(await Store.open(root), [
      ['a', small],
      ['b', other],
      ['big', big],
    ]);

    const store = await Store.open(root);
    const packed = store.findObject(raw(sha256(small)), small.length);
    expect(packed).toBeGreaterThanOrEqual(0);
    expect(store.packedLocation(packed)).toEqual(store.locate(sha256(small), small.length));
    expect(store.findObject(raw(sha256(big)), big.length)).toBe(LOOSE_OBJECT);
    expect(store.findObject(raw(sha256(Buffer.from('absent'))), 6)).toBe(-1);
    // A small object is looked for in the packs only, a large one among loose objects only.
    expect(store.findObject(raw(sha256(small)), 2 * 1024 * 1024)).toBe(-1);

    // Another pack committed by this process: the first answer still names the same object.
    const before = store.packedLocation(packed);
    await commit(store, [['c', Buffer.from('third\n'.repeat(40))]]);
    expect(fs.readdirSync(path.join(root, 'packs')).filter((f) => f.endsWith('.idx'))).toHaveLength(2);
    expect(store.packedLocation(packed)).toEqual(before);
    const third = store.findObject(raw(sha256(Buffer.from('third\n'.repeat(40)))), 240);
    expect(store.packedLocation(third)).toEqual(store.locate(sha256(Buffer.from('third\n'.repeat(40))), 240));
    expect(store.packedLocation(store.findObject(raw(sha256(other)), other.length))).toEqual(
      store.locate(sha256(other), other.length),
    );
  });
});
