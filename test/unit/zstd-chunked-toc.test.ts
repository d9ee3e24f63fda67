// The TOC's compact records and the hand-written check of its entries (src/formats/zstd-chunked-toc.ts):
// the records give back exactly the files and chunks put in, and the check gives zod's verdict and
// message for every entry zod was given before.
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { TocEntrySchema, type TocFile, tocFilesOf } from '../../src/formats/zstd-chunked.js';
import { entryIssue, isSha256Digest, TocFilesBuilder } from '../../src/formats/zstd-chunked-toc.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const chunk = (n: number, chunkOffset: number, size: number, start: number, zeros = false) => ({
  chunkOffset,
  size,
  start,
  end: start + 10,
  digest: digest(n),
  zeros,
});

describe('TocFiles: the TOC as columns', () => {
  const files: TocFile[] = [
    { path: 'etc/a', size: 3, digest: digest(1), chunks: [chunk(1, 0, 3, 0)] },
    // Several chunks, one of zeros; a size past 2^32.
    {
      path: 'big/blob.bin',
      size: 2 ** 33,
      digest: digest(2),
      chunks: [
        chunk(20, 0, 2 ** 32, 10),
        chunk(21, 2 ** 32, 2 ** 31, 20, true),
        chunk(22, 3 * 2 ** 31, 2 ** 31, 30),
      ],
    },
    // The same content under another name, a name in UTF-8 and one with a lone surrogate.
    { path: 'etc/copy-of-a', size: 3, digest: digest(1), chunks: [chunk(1, 0, 3, 40)] },
    { path: 'usr/share/dóc/日本語', size: 5, digest: digest(3), chunks: [chunk(3, 0, 5, 50)] },
    { path: 'odd/\ud800name', size: 1, digest: digest(4), chunks: [chunk(4, 0, 1, 60)] },
    { path: 'no-chunks', size: 7, digest: digest(5), chunks: [] },
  ];
  const toc = tocFilesOf(files);

  it('gives back every file and chunk as it was put in, by index and in order', () => {
    expect(toc.length).toBe(files.length);
    expect([...toc]).toEqual(files);
    files.forEach((file, i) => {
      expect(toc.at(i)).toEqual(file);
      expect(toc.path(i)).toBe(file.path);
      expect(toc.size(i)).toBe(file.size);
      expect(toc.digest(i)).toBe(file.digest);
      expect(toc.chunkCount(i)).toBe(file.chunks.length);
    });
    expect(toc.at(-1)).toBeUndefined();
    expect(toc.at(files.length)).toBeUndefined();
    expect(toc.totalSize()).toBe(files.reduce((sum, f) => sum + f.size, 0));
    expect(toc.chunkTotal).toBe(files.reduce((sum, f) => sum + f.chunks.length, 0));
  });

  it('keeps each digest once: equal content has one index, a chunk its file digest', () => {
    // digests 1, 2, 20, 21, 22, 3, 4, 5
    expect(toc.digestCount).toBe(8);
    expect(toc.digestIndex(2)).toBe(toc.digestIndex(0));
    expect(toc.digestIndex(1)).not.toBe(toc.digestIndex(0));
    expect(toc.chunkDigestIndex(toc.firstChunk(0))).toBe(toc.digestIndex(0));
    expect(toc.chunkZeros(toc.firstChunk(1) + 1)).toBe(true);
  });

  it('finds equal digests among many (its table grows)', () => {
    const builder = new TocFilesBuilder();
    for (let i = 0; i < 5000; i++) builder.addFile(`f${i}`, 1, digest((i * 7919) % 3001));
    const many = builder.finish();
    expect(many.digestCount).toBe(3001);
    const digests = Array.from({ length: 5000 }, (_, i) => many.digest(i));
    expect(digests).toEqual(Array.from({ length: 5000 }, (_, i) => digest((i * 7919) % 3001)));
    const indexes = Array.from({ length: 1999 }, (_, i) => many.digestIndex(i + 3001));
    expect(indexes).toEqual(Array.from({ length: 1999 }, (_, i) => many.digestIndex(i)));
  });
});

describe('entryIssue: a TOC entry checked as zod checked it', () => {
  // The fields the reader checks, in the schema's order.
  const schema = TocEntrySchema.pick({
    type: true,
    name: true,
    linkName: true,
    mode: true,
    size: true,
    digest: true,
    offset: true,
    endOffset: true,
    chunkSize: true,
    chunkOffset: true,
    chunkDigest: true,
    chunkType: true,
  });
  const zodIssue = (value: unknown) => {
    const result = schema.safeParse(value);
    if (result.success) return undefined;
    const [issue] = result.error.issues;
    return { field: issue!.path.length ? String(issue!.path[0]) : undefined, message: issue!.message };
  };
  const odd: unknown[] = [
    undefined,
    null,
    true,
    0,
    -0,
    1,
    -1,
    1.5,
    -1.5,
    2 ** 53,
    2 ** 53 - 1,
    -(2 ** 53),
    -(2 ** 53) + 1,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    '',
    '12',
    'reg',
    'chunk',
    'zeros',
    'sha256:00',
    digest(9),
    digest(9).toUpperCase(),
    `${digest(9)} `,
    [],
    [1],
    {},
  ];
  const fields = Object.keys(schema.shape);
  const valid = {
    type: 'reg',
    name: 'a/b',
    linkName: 'c',
    mode: 420,
    size: 5,
    digest: digest(1),
    offset: 10,
    endOffset: 20,
    chunkSize: 5,
    chunkOffset: 0,
    chunkDigest: digest(1),
    chunkType: 'zeros',
    modtime: '2026-01-01T00:00:00Z',
  };

  it('agrees with zod on every odd value in every field, alone and two at a time', () => {
    expect(entryIssue(valid)).toBeUndefined();
    for (const field of fields)
      for (const value of odd) {
        const entry = { ...valid, [field]: value };
        expect(entryIssue(entry), `${field}: ${String(value)}`).toEqual(zodIssue(entry));
      }
    // Two fields wrong: the first in the schema's order is named, as zod named it.
    let state = 15;
    const pick = (n: number) => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % n;
    };
    for (let round = 0; round < 2000; round++) {
      const entry: Record<string, unknown> = { ...valid };
      for (let k = 0; k < 2; k++) entry[fields[pick(fields.length)]!] = odd[pick(odd.length)];
      expect(entryIssue(entry), JSON.stringify(entry)).toEqual(zodIssue(entry));
    }
  });

  it('agrees with zod on entries that are not objects', () => {
    for (const value of [null, 7, 'reg', true, [], [valid]])
      expect(entryIssue(value)).toEqual(zodIssue(value));
  });

  it('knows a sha256 digest as isDigest does', () => {
    for (const text of [digest(1), digest(2 ** 40), `sha256:${'f'.repeat(64)}`])
      expect(isSha256Digest(text)).toBe(true);
    for (const text of [
      '',
      'sha256:',
      `sha512:${'0'.repeat(64)}`,
      `sha256:${'0'.repeat(63)}`,
      `sha256:${'0'.repeat(63)}g`,
      `sha256:${'0'.repeat(63)}\u0130`,
    ])
      expect(isSha256Digest(text), text).toBe(false);
  });
});
