// The bookkeeping of a partial pull that needs no registry: which TOC file a tar entry is, and how
// a large file's chunks group into runs read and written in one go.
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startCountingProxy } from '../../scripts/lib/counting-proxy.mjs';
import { chunkRuns, type LocalChunk } from '../../src/copy/store/assembler.js';
import { tocDigestsByPath } from '../../src/copy/store/partial.js';
import type { Digest } from '../../src/digest/index.js';
import { type TocFile, tocFilesOf, type ValidatedToc } from '../../src/formats/zstd-chunked.js';
import type { ObjectLocation } from '../../src/store/index.js';
import type { PlannedChunk } from '../../src/strategy/fetch-set.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const file = (path: string, n: number): TocFile => ({ path, size: n, digest: digest(n), chunks: [] });
const toc = (files: TocFile[]): ValidatedToc => ({ files: tocFilesOf(files), entryCount: files.length });

describe('tocDigestsByPath', () => {
  it('gives each file once, in TOC order, whatever order the tar asks in', () => {
    const next = tocDigestsByPath(toc([file('a', 1), file('b', 2), file('c', 3), file('d', 4)]));
    expect(next('a')).toBe(digest(1));
    expect(next('c')).toBe(digest(3)); // out of order: found all the same
    expect(next('b')).toBe(digest(2));
    expect(next('d')).toBe(digest(4));
    expect(next('a')).toBeUndefined(); // asked once more than the TOC lists it
    expect(next('nowhere')).toBeUndefined();
  });

  it('gives a path listed twice its digests in TOC order, in order or not', () => {
    const files = [file('x', 1), file('y', 2), file('x', 3), file('z', 4)];
    const inOrder = tocDigestsByPath(toc(files));
    expect(['x', 'y', 'x', 'z', 'x'].map(inOrder)).toEqual([
      digest(1),
      digest(2),
      digest(3),
      digest(4),
      undefined,
    ]);
    const outOfOrder = tocDigestsByPath(toc(files));
    expect(['z', 'x', 'x', 'y', 'x'].map(outOfOrder)).toEqual([
      digest(4),
      digest(1),
      digest(3),
      digest(2),
      undefined,
    ]);
  });
});

describe('chunkRuns', () => {
  const v1: ObjectLocation = { path: '/store/objects/v1', offset: 0, size: 100, packed: false };
  const other: ObjectLocation = { path: '/store/objects/other', offset: 0, size: 100, packed: false };
  const chunk = (
    n: number,
    chunkOffset: number,
    size: number,
    source: PlannedChunk['source'],
  ): PlannedChunk => ({
    digest: digest(n),
    chunkOffset,
    size,
    start: 0,
    end: 1,
    zeros: source === 'zeros',
    source,
  });
  const held = (entries: Array<[number, ObjectLocation, number, number]>) =>
    new Map<Digest, LocalChunk>(
      entries.map(([n, location, offset, size]) => [digest(n), { location, offset, size }]),
    );

  it('reads neighbours held at consecutive offsets of one object as one run', () => {
    const chunks = [
      chunk(1, 0, 10, 'local'),
      chunk(2, 10, 10, 'local'),
      chunk(3, 20, 5, 'fetch'),
      chunk(4, 25, 15, 'local'),
    ];
    const locations = held([
      [1, v1, 0, 10],
      [2, v1, 10, 10],
      [4, v1, 25, 15],
    ]);
    expect(chunkRuns(chunks, locations)).toEqual([
      { kind: 'local', fileOffset: 0, size: 20, location: v1, objectOffset: 0 },
      { kind: 'fetched', fileOffset: 20, size: 5 },
      { kind: 'local', fileOffset: 25, size: 15, location: v1, objectOffset: 25 },
    ]);
  });

  it('keeps apart chunks of other objects, or not next to each other in the object', () => {
    const chunks = [chunk(1, 0, 10, 'local'), chunk(2, 10, 10, 'local'), chunk(3, 20, 10, 'local')];
    const locations = held([
      [1, v1, 0, 10],
      [2, other, 10, 10],
      [3, other, 50, 10],
    ]);
    expect(chunkRuns(chunks, locations).map((run) => run.size)).toEqual([10, 10, 10]);
  });

  it('merges zeros with zeros and fetched chunks with fetched ones', () => {
    const chunks = [
      chunk(1, 0, 4, 'zeros'),
      chunk(2, 4, 4, 'zeros'),
      chunk(3, 8, 4, 'fetch'),
      chunk(4, 12, 4, 'fetch'),
    ];
    expect(chunkRuns(chunks, new Map())).toEqual([
      { kind: 'zeros', fileOffset: 0, size: 8 },
      { kind: 'fetched', fileOffset: 8, size: 8 },
    ]);
  });
});

describe('the counting proxy', () => {
  let stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops) await stop();
    stops = [];
  });

  it("passes on a Range header of 1024 ranges, as skopeo sends (over Node's 16 KiB default)", async () => {
    const target = http.createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) =>
      res.end(req.headers.range?.length.toString()),
    );
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise((resolve) => target.close(() => resolve())));
    const { port } = target.address() as { port: number };
    const proxy = await startCountingProxy(`127.0.0.1:${port}`);
    stops.push(proxy.stop);
    const range = `bytes=${Array.from({ length: 1024 }, (_, i) => `${i * 100_000_000}-${i * 100_000_000 + 9_999}`).join(',')}`;
    expect(range.length).toBeGreaterThan(16 * 1024);
    const answer = await fetch(`http://${proxy.host}/v2/app/blobs/${digest(1)}`, { headers: { range } });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toBe(String(range.length));
  });
});
