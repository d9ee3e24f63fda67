// A layer rebuilt from stored objects, the way a partial pull proves its DiffID: the ingest gets
// the headers and, for each file, only the object it holds; a worker thread reads and hashes the
// objects. What it commits must be what a reading of the bytes themselves gives.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Digest, sha256 } from '../../src/digest/index.js';
import { VerificationError } from '../../src/errors/index.js';
import {
  ingestLayer,
  RebuildHasher,
  type RebuildPiece,
  readTarSplit,
  type StagedLayer,
  Store,
  type StoreSession,
} from '../../src/store/index.js';
import { tempDir } from '../harness/cli.js';
import { snapshot } from '../harness/snapshot.js';
import { END, makeTar, padded, ustarHeader } from '../harness/tar-writer.js';

const FILES: Array<[string, Buffer]> = [
  ['etc/a', Buffer.from('a'.repeat(700))],
  ['etc/b', Buffer.from('b'.repeat(700))],
  // Over the pack threshold: a loose object, read in pieces.
  ['usr/big', Buffer.from(Array.from({ length: 2.5 * 1024 * 1024 }, (_, i) => (i * 7919) % 251))],
  ['etc/c', Buffer.from('ccc')],
];

let work: { dir: string; cleanup: () => void };
let session: StoreSession;
const storeRoot = () => path.join(work.dir, 'store');

beforeEach(async () => {
  work = tempDir('skiff-rebuild-');
  const store = await Store.open(storeRoot());
  session = await store.beginSession();
  for (const [name, content] of FILES) {
    if (content.length <= 1024 * 1024) await session.stageSmall(sha256(content), content);
    else {
      const temp = path.join(work.dir, name.replace('/', '-'));
      fs.writeFileSync(temp, content);
      await session.stageLoose(temp, sha256(content), content.length);
    }
  }
  await session.flushStaged();
});
afterEach(() => work.cleanup());

/** The tar of FILES, written by the test's own tar writer. */
function tar(): Buffer {
  return makeTar([{ name: 'etc', type: 'dir' }, ...FILES.map(([name, content]) => ({ name, content }))]);
}

/**
 * The same tar as a rebuild gives it: headers and padding as bytes, each file as the object
 * `objectFor` names (by default its own), posted to the hasher in the same order.
 */
function* rebuild(hasher: RebuildHasher, objectFor = (name: string) => name): Generator<RebuildPiece> {
  const bytes = (b: Buffer) => {
    hasher.raw(b);
    return b;
  };
  yield bytes(ustarHeader({ name: 'etc', type: '5', mode: 0o755 }));
  for (const [name, content] of FILES) {
    yield bytes(ustarHeader({ name, size: content.length }));
    const object = FILES.find(([n]) => n === objectFor(name))![1];
    const digest = sha256(object);
    hasher.object(session.locate(digest, object.length)!);
    yield { held: object.length, digest };
    const padding = padded(content).subarray(content.length);
    if (padding.length > 0) yield bytes(padding);
  }
  yield bytes(END);
}

const knownDigest = (name: string): Digest | undefined => {
  const content = FILES.find(([n]) => n === name)?.[1];
  return content && sha256(content);
};

async function ingestRebuilt(objectFor?: (name: string) => string): Promise<StagedLayer> {
  const hasher = new RebuildHasher();
  try {
    return await ingestLayer(rebuild(hasher, objectFor), {
      session,
      provenance: 'computed',
      knownDigest,
      trustKnownObjects: true,
      digestedBySource: () => hasher.finish(),
    });
  } finally {
    await hasher.stop();
  }
}

async function records(staged: StagedLayer) {
  const all = [];
  for await (const record of readTarSplit(path.join(staged.dir, 'tarsplit.jsonl.zst'))) all.push(record);
  return all;
}

describe('a layer rebuilt from stored objects, hashed on a worker thread', () => {
  it('has the DiffID, size and records of the very bytes it stands for', async () => {
    const bytes = tar();
    // The rebuild's pieces are the test's tar, byte for byte.
    expect(bytes.length).toBe(512 + FILES.reduce((sum, [, c]) => sum + padded(c).length + 512, 0) + 1024);

    const rebuilt = await ingestRebuilt();
    expect(rebuilt.diffID).toBe(sha256(bytes));
    expect(rebuilt.tarSize).toBe(bytes.length);
    const read = await ingestLayer(
      (async function* () {
        yield bytes;
      })(),
      { session, provenance: 'computed' },
    );
    expect(read.diffID).toBe(rebuilt.diffID);
    expect(await records(rebuilt)).toEqual(await records(read));
    expect([...rebuilt.objects].sort()).toEqual(FILES.map(([, c]) => sha256(c)).sort());
  });

  it('refuses to record one object where the rebuild put another of the same size', async () => {
    const swapped = (name: string) => (name === 'etc/a' ? 'etc/b' : name === 'etc/b' ? 'etc/a' : name);
    const before = snapshot(storeRoot());
    const failure = await ingestRebuilt(swapped).catch((error: unknown) => error);
    // Nothing half-staged is left behind: the store, staging area included, is as it was.
    expect(snapshot(storeRoot())).toEqual(before);
    expect(failure).toBeInstanceOf(VerificationError);
    expect((failure as Error).message).toBe(
      `file "etc/a": the rebuild puts object ${sha256(FILES[1]![1])} where ${sha256(FILES[0]![1])} belongs`,
    );
  });

  it('a pack cut short is a damaged store, named, not a wrong DiffID', async () => {
    const location = session.locate(sha256(FILES[3]![1]), 3)!;
    fs.truncateSync(location.path, location.offset + 1);
    const before = snapshot(storeRoot());
    const failure = await ingestRebuilt().catch((error: unknown) => error);
    expect(snapshot(storeRoot())).toEqual(before);
    expect(failure).toBeInstanceOf(VerificationError);
    expect((failure as Error).message).toMatch(
      new RegExp(
        `^${location.path}: object truncated at offset ${location.offset + 1} \\(store damaged\\?\\)$`,
      ),
    );
  });
});
