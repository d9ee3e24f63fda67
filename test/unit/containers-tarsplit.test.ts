// Reading containers/storage's tar-split (JSON lines in zstd) a window at a time: lines that
// straddle windows and frames, lines longer than a window, and streams cut short.
import { describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { readContainersTarSplit, TocUnverifiableError } from '../../src/formats/zstd-chunked.js';

const segment = (bytes: Buffer) => `${JSON.stringify({ type: 2, payload: bytes.toString('base64') })}\n`;
const file = (name: string, size?: number) => `${JSON.stringify({ type: 1, name, size })}\n`;

function records(compressed: Buffer) {
  return [...readContainersTarSplit(compressed)].map((r) =>
    r.kind === 'segment' ? { kind: r.kind, length: r.bytes.length, first: r.bytes[0] } : r,
  );
}

describe('readContainersTarSplit', () => {
  it('reads lines across window and frame boundaries, including one longer than a window', () => {
    const lines: string[] = [];
    const expected: unknown[] = [];
    for (let i = 0; i < 3000; i++) {
      lines.push(segment(Buffer.alloc(700, i % 256)), file(`dir/file-${i}`, i));
      expected.push(
        { kind: 'segment', length: 700, first: i % 256 },
        { kind: 'file', name: `dir/file-${i}`, size: i },
      );
    }
    // A 1.5 MiB PAX record's worth of header bytes: one line, wider than the 1 MiB window.
    lines.push(segment(Buffer.alloc(1536 * 1024, 7)), file('empty'));
    expected.push(
      { kind: 'segment', length: 1536 * 1024, first: 7 },
      { kind: 'file', name: 'empty', size: 0 },
    );
    const text = Buffer.from(lines.join(''));
    // Two frames back to back, cut in the middle of a line.
    const half = Math.floor(text.length / 2) + 17;
    const twoFrames = Buffer.concat([compress(text.subarray(0, half)), compress(text.subarray(half))]);
    expect(text.length).toBeGreaterThan(4 * 1024 * 1024);
    expect(records(twoFrames)).toEqual(expected);
    expect(records(compress(text))).toEqual(expected);
  });

  it('refuses a stream cut inside its frame, bad JSON and unknown shapes, naming the line', () => {
    const whole = compress(Buffer.from(segment(Buffer.alloc(4096, 1)).repeat(100)));
    expect(() => records(whole.subarray(0, whole.length - 9))).toThrow(TocUnverifiableError);
    expect(() => records(compress(Buffer.from(`${file('a', 1)}{"type":2,`)))).toThrow(
      /tar-split line 2 is not JSON/,
    );
    expect(() => records(compress(Buffer.from(`${file('a', -1)}`)))).toThrow(/line 1: bad size/);
    expect(() => records(compress(Buffer.from('{"type":3}\n')))).toThrow(/line 1 has an unknown shape/);
    expect(() => records(Buffer.from('not zstd at all'))).toThrow(/does not decompress/);
  });
});
