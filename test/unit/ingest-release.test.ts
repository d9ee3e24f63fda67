// The ingest's release signal (IngestOptions.release): a chunk handed back may be reused at once by
// its source (the decode worker's next window goes into it). So a chunk released while the ingest
// still holds a view of it (a small file's pieces waiting for the pack's copy, a header split
// across chunks, an extension's values waiting for their entry) would put other bytes in the store
// under the digest of the right ones. Here the source overwrites every chunk it gets back: each
// stored object must still hold exactly its file's bytes.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/digest/index.js';
import { ingestLayer, Store } from '../../src/store/index.js';
import { tempDir } from '../harness/cli.js';
import { makeTar } from '../harness/tar-writer.js';

const work = tempDir('skiff-ingest-release-');
afterAll(() => work.cleanup());

/** Deterministic bytes, different for every file. */
function content(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * The tar in chunks of `size` bytes, each in a buffer of its own (the source keys them by buffer).
 * `yieldEvery`: a turn of the event loop every so many chunks, for the pack's writes to run; without
 * it the ingest outruns the disk and files wait for the pack's copy while later chunks arrive.
 */
async function* chunked(
  tar: Buffer,
  size: number,
  lent: Set<ArrayBufferLike>,
  yieldEvery: number,
): AsyncGenerator<Buffer> {
  for (let at = 0; at < tar.length; at += size) {
    const part = tar.subarray(at, at + size);
    const chunk = Buffer.allocUnsafeSlow(part.length);
    part.copy(chunk);
    lent.add(chunk.buffer);
    if ((at / size) % yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
    yield chunk;
  }
}

/**
 * Ingests `files` from chunks that are overwritten as soon as they are released (as the decode
 * worker's next window overwrites a buffer), then reads every object back from the store.
 */
async function ingestReusing(
  name: string,
  files: Array<{ name: string; content: Buffer }>,
  chunkSize: number,
  yieldEvery: number,
): Promise<void> {
  const tar = makeTar(files);
  const root = path.join(work.dir, name);
  const store = await Store.open(root);
  const session = await store.beginSession();
  const lent = new Set<ArrayBufferLike>();
  let released = 0;
  const staged = await ingestLayer(chunked(tar, chunkSize, lent, yieldEvery), {
    session,
    provenance: 'computed',
    release: (chunk) => {
      expect(lent.delete(chunk.buffer)).toBe(true);
      released++;
      chunk.fill(0xee);
    },
  });
  await session.commitLayer(sha256(tar), staged);
  await session.end();
  // Most chunks came back (those of files still waiting for the pack at the end did not).
  expect(released).toBeGreaterThan(Math.ceil(tar.length / chunkSize) / 2);

  const reopened = await Store.open(root);
  for (const file of files) {
    if (file.content.length === 0) continue;
    const location = reopened.locate(sha256(file.content), file.content.length);
    expect(location, file.name).toBeDefined();
    const stored = await reopened.readRange(location!, 0, file.content.length);
    expect(stored.equals(file.content), file.name).toBe(true);
  }
}

const smallFiles = (count: number) =>
  Array.from({ length: count }, (_, i) => ({
    name: `d${i % 7}/f${i}`,
    content: content(i, 50 + ((i * 7919) % 9000)),
  }));

describe('ingestLayer with release', () => {
  it('keeps the chunks of small files the pack has not copied yet (the disk slower than the ingest)', async () => {
    await ingestReusing('small', smallFiles(3000), 4093, 1_000_000);
  });

  it('keeps a header split across chunks until it is whole', async () => {
    const empty = Array.from({ length: 300 }, (_, i) => ({ name: `e/${i}`, content: Buffer.alloc(0) }));
    await ingestReusing('headers', empty, 700, 1);
  });

  it('hands back each chunk of a large file once it is written, and small files still land whole', async () => {
    const files = [...smallFiles(400), { name: 'big', content: content(999, 3 * 1024 * 1024 + 17) }];
    await ingestReusing('mixed', files, 4093, 1);
  });
});
