// The containers tar-split cursor (a partial pull's rebuild) must read exactly what
// readContainersTarSplit reads: the same records from every line it reads fast, the same records or
// the same error from every other line, whatever the windows and frames.
import { describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { ContainersTarSplitCursor, FILE, SEGMENT } from '../../src/formats/containers-tar-split.js';
import { readContainersTarSplit } from '../../src/formats/zstd-chunked.js';
import { pseudoRandomBytes } from '../harness/random.js';

type Plain = { kind: 'segment'; bytes: string } | { kind: 'file'; name: string; size: number };

function viaReader(compressed: Buffer): { records: Plain[]; error?: string } {
  const records: Plain[] = [];
  try {
    for (const r of readContainersTarSplit(compressed))
      records.push(
        r.kind === 'segment' ? { kind: r.kind, bytes: r.bytes.toString('hex') } : { ...r, kind: 'file' },
      );
  } catch (error) {
    return { records, error: `${(error as Error).constructor.name}: ${(error as Error).message}` };
  }
  return { records };
}

function viaCursor(compressed: Buffer): { records: Plain[]; error?: string } {
  const records: Plain[] = [];
  try {
    const cursor = new ContainersTarSplitCursor(compressed);
    for (let kind = cursor.next(); kind !== 0; kind = cursor.next())
      records.push(
        kind === SEGMENT
          ? { kind: 'segment', bytes: cursor.segment.toString('hex') }
          : { kind: 'file', name: cursor.name, size: cursor.size },
      );
    expect(FILE).not.toBe(SEGMENT);
  } catch (error) {
    return { records, error: `${(error as Error).constructor.name}: ${(error as Error).message}` };
  }
  return { records };
}

/** Lines as Go's encoding/json writes them for tar-split's storage.Entry. */
const goSegment = (bytes: Buffer, position: number) =>
  `{"type":2,"payload":"${bytes.toString('base64')}","position":${position}}\n`;
const goFile = (name: string, size: number, position: number, crc: string | null = 'AAAAAAAAAAA=') =>
  `{"type":1,"name":${JSON.stringify(name)},${size ? `"size":${size},` : ''}"payload":${crc === null ? 'null' : `"${crc}"`},"position":${position}}\n`;

function same(text: string | Buffer) {
  const compressed = compress(Buffer.from(text));
  const expected = viaReader(compressed);
  expect(viaCursor(compressed)).toEqual(expected);
  return expected;
}

describe('ContainersTarSplitCursor', () => {
  it('reads what readContainersTarSplit reads from a Go-written tar-split across windows and frames', () => {
    const lines: string[] = [];
    for (let i = 0; i < 4000; i++) {
      lines.push(goSegment(pseudoRandomBytes(512 + (i % 7) * 100, i), 2 * i));
      lines.push(
        goFile(
          `dir/sub-${i % 13}/file-${i}.txt`,
          i % 5 === 0 ? 0 : i * 3,
          2 * i + 1,
          i % 9 ? 'q83vEjRWeJA=' : null,
        ),
      );
    }
    lines.push(goSegment(Buffer.alloc(1536 * 1024, 7), 9000), goSegment(Buffer.alloc(1024), 9001));
    const text = Buffer.from(lines.join(''));
    expect(text.length).toBeGreaterThan(4 * 1024 * 1024);
    const result = same(text);
    expect(result.error).toBeUndefined();
    expect(result.records).toHaveLength(8002);
    // Two frames back to back, cut in the middle of a line.
    const half = Math.floor(text.length / 2) + 17;
    const twoFrames = Buffer.concat([compress(text.subarray(0, half)), compress(text.subarray(half))]);
    expect(viaCursor(twoFrames)).toEqual(viaReader(twoFrames));
  });

  it('reads lines in any other shape as JSON, as before', () => {
    const lines = [
      goFile('a & b <c>.txt', 3, 1), // JSON.stringify leaves & and <> as they are
      '{"type":1,"name":"a \\u0026 b \\u003cc\\u003e.txt","size":3,"payload":"AAAAAAAAAAA=","position":1}\n',
      '{"type":1,"name":"quote\\"and\\\\slash","size":4,"payload":null,"position":2}\n',
      '{"type":1,"name":"ünï/cødé","size":5,"payload":null,"position":3}\n',
      '{"payload":"AAAA","type":2,"position":4}\n',
      '{"type":2,"payload":"QUJD","position":5}\n',
      '{"type":2,"payload":"QUI","position":6}\n', // unpadded: not canonical
      '{"type":2,"payload":"QU\\/D","position":7}\n',
      '{"type":2,"payload":"QU JD","position":8}\n',
      '{"type":2, "payload":"QUJD", "position":9}\n',
      '\n',
      '{"type":1,"name":"sized-zero","size":0,"payload":null,"position":10}\n',
      '{"type":1,"size":6,"name":"order","payload":null,"position":11}\n',
      '{"type":2,"payload":"","position":12}\n',
      '{"type":1,"name":"no-position","size":1,"payload":null}\n',
      '{"type":2,"payload":"QUJD","position":-1}',
    ];
    const result = same(lines.join(''));
    expect(result.error).toBeUndefined();
    expect(result.records).toHaveLength(15);
  });

  it('refuses what readContainersTarSplit refuses, with the same error', () => {
    const bad = [
      `${goFile('a', 1, 0)}{"type":2,`,
      '{"type":1,"name":"a","size":-1,"payload":null,"position":0}\n',
      '{"type":1,"name":"a","size":01,"payload":null,"position":0}\n',
      '{"type":1,"name":"a","size":9007199254740993,"payload":null,"position":0}\n',
      '{"type":1,"name":"a","size":1.5,"payload":null,"position":0}\n',
      '{"type":1,"name":"tab\there","size":1,"payload":null,"position":0}\n',
      '{"type":2,"payload":"QU\nJD","position":0}\n',
      '{"type":2,"payload":"QUJD","position":01}\n',
      '{"type":3}\n',
      '{"type":1,"name_raw":"YQ==","size":1,"payload":null,"position":0}\n',
      '{"type":2,"payload":null,"position":0}\n',
    ];
    for (const text of bad) {
      const result = same(text);
      expect(result.error, text).toMatch(/^TocUnverifiableError: /);
    }
    const whole = compress(Buffer.from(goSegment(Buffer.alloc(4096, 1), 0).repeat(100)));
    for (const cut of [whole.subarray(0, whole.length - 9), Buffer.from('not zstd at all')])
      expect(viaCursor(cut)).toEqual(viaReader(cut));
    expect(viaCursor(Buffer.from('not zstd at all')).error).toMatch(/does not decompress/);
  });
});
