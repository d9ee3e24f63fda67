import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { VerificationError } from '../../src/errors/index.js';
import {
  type ContentRange,
  multipartBoundary,
  parseContentRange,
  readMultipartByteranges,
} from '../../src/registry/multipart.js';
import { prng, pseudoRandomBytes } from '../harness/random.js';

const BOUNDARY = '3d6b6a416f9b5';

interface TestPart {
  range: ContentRange;
  data: Buffer;
  headers?: string[];
}

function part(
  start: number,
  data: Buffer | string,
  total: number | '*' = 1000,
  headers?: string[],
): TestPart {
  const bytes = Buffer.from(data);
  return {
    range: total === '*' ? { start, end: start + bytes.length } : { start, end: start + bytes.length, total },
    data: bytes,
    headers: headers ?? [
      `Content-Range: bytes ${start}-${start + bytes.length - 1}/${total}`,
      'Content-Type: application/octet-stream',
    ],
  };
}

/** Writes a body the way Go's mime/multipart does, with knobs for the variations servers allow. */
function buildBody(
  parts: TestPart[],
  options: { eol?: string; preamble?: string; epilogue?: string; padding?: string; boundary?: string } = {},
): Buffer {
  const eol = options.eol ?? '\r\n';
  const dash = `--${options.boundary ?? BOUNDARY}`;
  const pieces: Buffer[] = [Buffer.from(options.preamble ?? '')];
  parts.forEach((p, i) => {
    const head = `${i === 0 ? '' : eol}${dash}${options.padding ?? ''}${eol}${(p.headers ?? []).map((h) => h + eol).join('')}${eol}`;
    pieces.push(Buffer.from(head, 'latin1'), p.data);
  });
  pieces.push(
    Buffer.from(`${eol}${dash}--${options.padding ?? ''}${eol}${options.epilogue ?? ''}`, 'latin1'),
  );
  return Buffer.concat(pieces);
}

async function* chunked(body: Buffer, cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const cut of [...cuts, body.length]) {
    // Copies, so the reader cannot rely on chunks sharing one buffer.
    yield new Uint8Array(body.subarray(at, cut));
    at = cut;
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads every part fully and returns what was delivered. */
async function collect(body: AsyncIterable<Uint8Array>, boundary = BOUNDARY): Promise<TestPart[]> {
  const out: TestPart[] = [];
  await readMultipartByteranges(body, boundary, async (range, data) => {
    out.push({ range, data: await readAll(data) });
  });
  return out;
}

function expectParts(actual: TestPart[], expected: TestPart[]): void {
  expect(actual.map((p) => p.range)).toEqual(expected.map((p) => p.range));
  actual.forEach((p, i) => {
    expect(p.data.equals(expected[i]!.data), `part ${i} bytes`).toBe(true);
  });
}

// Data chosen to tempt the parser: CR/LF bytes, a dash-dash, and a boundary prefix that stops short.
const tricky = [
  part(0, 'A'),
  part(10, `\r\n--${BOUNDARY.slice(0, -1)}\r\n\n\r`),
  part(100, pseudoRandomBytes(300, 1)),
  part(900, '--\r\n'),
];

async function expectVerification(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(VerificationError);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message).not.toContain('\n');
}

describe('parseContentRange', () => {
  it('converts to an exclusive end', () => {
    expect(parseContentRange('bytes 0-99/1234')).toEqual({ start: 0, end: 100, total: 1234 });
    expect(parseContentRange('bytes 0-99/*')).toEqual({ start: 0, end: 100 });
    expect(parseContentRange(' Bytes 5-5/6 ')).toEqual({ start: 5, end: 6, total: 6 });
  });

  it.each([
    'bytes */1234',
    'bytes 5-4/10',
    'bytes 0-10/10',
    'bytes 0-1',
    'items 0-1/2',
    'bytes -1-2/3',
    'bytes 0-1/2 extra',
    'bytes 0-99999999999999999999/*',
    '',
  ])('rejects %j', (value) => {
    expect(() => parseContentRange(value)).toThrow(VerificationError);
  });
});

describe('multipartBoundary', () => {
  it('reads quoted and unquoted boundaries', () => {
    expect(multipartBoundary('multipart/byteranges; boundary=abc123')).toBe('abc123');
    expect(multipartBoundary('Multipart/ByteRanges;BOUNDARY=abc')).toBe('abc');
    expect(multipartBoundary('multipart/byteranges; charset=x; boundary="a b;c\\"d"')).toBe('a b;c"d');
    expect(
      multipartBoundary(
        'multipart/byteranges; boundary=9f28ae4fb0d92fe5044845ff3a86e3d1e8f56c87ea12bc950c9a491de2a0',
      ),
    ).toBe('9f28ae4fb0d92fe5044845ff3a86e3d1e8f56c87ea12bc950c9a491de2a0');
  });

  it('is undefined for other types or without a boundary', () => {
    expect(multipartBoundary('application/octet-stream')).toBeUndefined();
    expect(multipartBoundary('multipart/mixed; boundary=abc')).toBeUndefined();
    expect(multipartBoundary('multipart/byteranges')).toBeUndefined();
    expect(multipartBoundary('multipart/byteranges; charset=x')).toBeUndefined();
    expect(multipartBoundary('multipart/byteranges; boundary=""')).toBeUndefined();
  });
});

describe('readMultipartByteranges', () => {
  const body = buildBody(tricky);

  it('reads parts whose data looks like boundaries and line breaks', async () => {
    expectParts(await collect(chunked(body, [])), tricky);
  });

  it('handles a chunk boundary at every position', async () => {
    for (let cut = 1; cut < body.length; cut++) {
      expectParts(await collect(chunked(body, [cut])), tricky);
    }
  });

  it('handles byte-by-byte delivery and random chunking', async () => {
    expectParts(
      await collect(
        chunked(
          body,
          Array.from({ length: body.length - 1 }, (_, i) => i + 1),
        ),
      ),
      tricky,
    );
    const random = prng(7);
    for (let round = 0; round < 200; round++) {
      const cuts = Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        Math.floor(random() * body.length),
      );
      expectParts(
        await collect(
          chunked(
            body,
            [...new Set(cuts)].sort((a, b) => a - b),
          ),
        ),
        tricky,
      );
    }
  });

  it('tolerates bare LF line endings, at every chunk position', async () => {
    const lf = buildBody(tricky, { eol: '\n' });
    for (let cut = 1; cut < lf.length; cut += 3) expectParts(await collect(chunked(lf, [cut])), tricky);
  });

  it('uses the Content-Range to tell a data CR from a line-break CR with bare LFs', async () => {
    const parts = [part(0, 'ends in CR\r'), part(50, '\r')];
    expectParts(await collect(chunked(buildBody(parts, { eol: '\n' }), [])), parts);
  });

  it('skips preamble and epilogue, and accepts transport padding', async () => {
    const framed = buildBody(tricky, {
      preamble: `This is a preamble.\r\n--${BOUNDARY.slice(0, 5)} is not a boundary\r\n`,
      epilogue: `epilogue\r\n--${BOUNDARY}\r\nContent-Range: nonsense\r\n\r\n`,
      padding: ' \t',
    });
    for (const cut of [0, 5, 21, 40, framed.length - 30]) {
      expectParts(await collect(chunked(framed, cut ? [cut] : [])), tricky);
    }
  });

  it('accepts extra headers, any header-name case, and a closing boundary without CRLF', async () => {
    const parts = [
      part(3, 'abc', 1000, ['X-Whatever: 1', 'content-range:bytes 3-5/1000', 'CONTENT-TYPE: text/plain']),
      part(7, 'z', '*', ['CoNtEnT-rAnGe:   bytes 7-7/*  ']),
    ];
    const bytes = buildBody(parts);
    expectParts(await collect(chunked(bytes.subarray(0, bytes.length - 2), [])), parts);
  });

  it('reads a single part and megabyte parts', async () => {
    const big = [
      part(0, pseudoRandomBytes(3 * 1024 * 1024 + 17, 2), 5_000_000),
      part(4_000_000, 'tail', 5_000_000),
    ];
    const bytes = buildBody(big);
    const cuts = Array.from({ length: Math.floor(bytes.length / 65536) }, (_, i) => (i + 1) * 65536);
    expectParts(await collect(chunked(bytes, cuts)), big);
    expectParts(await collect(chunked(buildBody([tricky[2]!]), [])), [tricky[2]!]);
  });

  describe('rejects malformed bodies', () => {
    it('a part without Content-Range', async () => {
      const bytes = buildBody([
        part(0, 'abc'),
        part(5, 'de', 1000, ['Content-Type: application/octet-stream']),
      ]);
      await expectVerification(collect(chunked(bytes, [])), /without Content-Range/);
    });

    it('an invalid Content-Range', async () => {
      const bytes = buildBody([part(0, 'abc', 1000, ['Content-Range: bytes 2-1/1000'])]);
      await expectVerification(collect(chunked(bytes, [])), /invalid Content-Range "bytes 2-1\/1000"/);
    });

    it('a part shorter than its Content-Range, at any chunking', async () => {
      const bytes = buildBody([part(0, 'abcdef', 1000, ['Content-Range: bytes 0-9/1000'])]);
      for (let cut = 1; cut < bytes.length; cut++) {
        await expectVerification(
          collect(chunked(bytes, [cut])),
          /has 6 bytes but its Content-Range bytes 0-9 \(10/,
        );
      }
    });

    it('a part longer than its Content-Range, without buffering it', async () => {
      const lying = part(0, pseudoRandomBytes(100_000, 3), 200_000, ['Content-Range: bytes 0-9/200000']);
      const delivered: number[] = [];
      const run = readMultipartByteranges(
        chunked(buildBody([lying]), [30, 5000, 50_000]),
        BOUNDARY,
        async (_r, d) => {
          let got = 0;
          try {
            for await (const chunk of d) got += (chunk as Buffer).length;
          } catch {
            // the parser's error, checked below
          }
          delivered.push(got);
        },
      );
      await expectVerification(run, /longer than its Content-Range bytes 0-9/);
      expect(delivered.length).toBe(1);
      // Never more bytes than the Content-Range claims reach the consumer.
      expect(delivered[0]).toBeLessThanOrEqual(10);
      // Found whole in one chunk, the count is exact.
      const small = buildBody([part(0, 'abcdefghijkl', 1000, ['Content-Range: bytes 0-9/1000'])]);
      await expectVerification(collect(chunked(small, [])), /has 12 bytes but/);
    });

    it('a body truncated anywhere before the closing boundary', async () => {
      const closeEnd = body.length - 2; // the CRLF after the closing boundary is optional
      for (let length = `--${BOUNDARY}`.length; length < closeEnd; length++) {
        await expectVerification(
          collect(chunked(body.subarray(0, length), [])),
          /truncated before the closing boundary/,
        );
      }
      await expectVerification(collect(chunked(Buffer.alloc(0), [])), /no "--3d6b6a416f9b5" boundary line/);
    });

    it('garbage instead of a boundary', async () => {
      await expectVerification(
        collect(chunked(Buffer.from('<html>not multipart</html>'), [])),
        /no "--3d6b.*garbage/,
      );
      await expectVerification(
        collect(chunked(Buffer.concat([Buffer.from('x'), pseudoRandomBytes(200_000, 4)]), [])),
        /garbage instead of a boundary/,
      );
      const glued = Buffer.from(
        `--${BOUNDARY}\r\nContent-Range: bytes 0-2/9\r\n\r\nabc\r\n--${BOUNDARY}junk\r\n`,
      );
      await expectVerification(
        collect(chunked(glued, [])),
        /garbage instead of a boundary: "--3d6b6a416f9b5junk"/,
      );
    });

    it('damaged framing: any outcome is parts or a VerificationError, never another exception', async () => {
      const next = prng(20261123);
      const pick = (n: number) => Math.floor(next() * n);
      const parts = [part(0, 'abc'), part(100, pseudoRandomBytes(3000, 9)), part(5000, '\r\n--x\r\n')];
      const whole = buildBody(parts);
      let refused = 0;
      for (let round = 0; round < 400; round++) {
        const damaged = Buffer.from(whole);
        for (let i = 1 + pick(3); i > 0; i--) {
          // Mostly printable damage, so some of it still reads as header lines and ranges.
          damaged[pick(damaged.length)] = pick(2) ? 0x20 + pick(95) : pick(256);
        }
        const cuts = [pick(damaged.length), pick(damaged.length)].sort((a, b) => a - b);
        try {
          await collect(chunked(damaged, cuts));
        } catch (error) {
          expect(error, `round ${round}: ${(error as Error).message}`).toBeInstanceOf(VerificationError);
          refused++;
        }
      }
      expect(refused).toBeGreaterThan(50);
    });

    it('a malformed header line', async () => {
      const bytes = buildBody([part(0, 'abc', 1000, ['Content-Range: bytes 0-2/1000', 'no colon here'])]);
      await expectVerification(
        collect(chunked(bytes, [])),
        /malformed multipart part header "no colon here"/,
      );
    });

    it('errors the part stream the consumer is reading, and closes the body', async () => {
      let closed = false;
      async function* source(): AsyncGenerator<Uint8Array> {
        try {
          yield Buffer.from(`--${BOUNDARY}\r\nContent-Range: bytes 0-99/100\r\n\r\nonly a few bytes`);
        } finally {
          closed = true;
        }
      }
      let seen: unknown;
      const run = readMultipartByteranges(source(), BOUNDARY, async (_r, data) => {
        seen = await readAll(data).catch((e: unknown) => e);
      });
      await expectVerification(run, /truncated/);
      expect(seen).toBeInstanceOf(VerificationError);
      expect(closed).toBe(true);
    });
  });

  describe('consumers', () => {
    it('rethrows what onPart throws, and stops reading', async () => {
      const boom = new Error('disk full');
      let calls = 0;
      let closed = false;
      async function* source(): AsyncGenerator<Uint8Array> {
        try {
          yield* chunked(body, [40, 80, 120]);
        } finally {
          closed = true;
        }
      }
      const run = readMultipartByteranges(source(), BOUNDARY, async (_range, data) => {
        calls++;
        await readAll(data);
        if (calls === 2) throw boom;
      });
      await expect(run).rejects.toBe(boom);
      expect(calls).toBe(2);
      expect(closed).toBe(true);
    });

    it('rethrows an onPart failure while the feeder waits on it', async () => {
      const boom = new Error('consumer gave up');
      const bytes = buildBody([part(0, pseudoRandomBytes(1 << 20, 5), 2 << 20)]);
      const run = readMultipartByteranges(chunked(bytes, [1000]), BOUNDARY, async () => {
        await new Promise((r) => setTimeout(r, 20));
        throw boom;
      });
      await expect(run).rejects.toBe(boom);
      const sync = readMultipartByteranges(chunked(body, []), BOUNDARY, () => {
        throw boom;
      });
      await expect(sync).rejects.toBe(boom);
    });

    it('drains what onPart leaves unread, and keeps going', async () => {
      const big = pseudoRandomBytes(500_000, 6);
      const parts = [part(0, big, 2 << 20), part(600_000, 'after', 2 << 20), part(700_000, big, 2 << 20)];
      const bytes = buildBody(parts);
      const seen: Array<{ range: ContentRange; first?: Buffer }> = [];
      await readMultipartByteranges(
        chunked(bytes, [100, 70_000, 300_000, 800_000]),
        BOUNDARY,
        async (range, data) => {
          if (range.start === 0) return; // reads nothing
          if (range.start === 700_000) {
            // reads one chunk and leaves
            for await (const chunk of data) {
              seen.push({ range, first: chunk as Buffer });
              return;
            }
          }
          seen.push({ range, first: await readAll(data) });
        },
      );
      expect(seen.map((s) => s.range.start)).toEqual([600_000, 700_000]);
      expect(seen[0]!.first!.toString()).toBe('after');
      expect(big.subarray(0, seen[1]!.first!.length).equals(seen[1]!.first!)).toBe(true);
    });

    it('waits for onPart before starting the next part', async () => {
      const log: string[] = [];
      await readMultipartByteranges(chunked(body, []), BOUNDARY, async (range, data) => {
        log.push(`start ${range.start}`);
        await readAll(data);
        await new Promise((r) => setTimeout(r, 5));
        log.push(`end ${range.start}`);
      });
      expect(log).toEqual(tricky.flatMap((p) => [`start ${p.range.start}`, `end ${p.range.start}`]));
    });

    it('propagates backpressure to the body', async () => {
      const chunkSize = 16 * 1024;
      const data = pseudoRandomBytes(4 * 1024 * 1024, 8);
      const bytes = buildBody([part(0, data, data.length)]);
      let pulled = 0;
      async function* source(): AsyncGenerator<Uint8Array> {
        for (let at = 0; at < bytes.length; at += chunkSize) {
          const chunk = bytes.subarray(at, at + chunkSize);
          pulled += chunk.length;
          yield chunk;
        }
      }
      let consumed = 0;
      let maxAhead = 0;
      const hash = createHash('sha256');
      await readMultipartByteranges(source(), BOUNDARY, async (_range, stream) => {
        for await (const chunk of stream) {
          // Slow consumer: let the reader run as far ahead as it wants, then see how far that is.
          await new Promise((r) => setTimeout(r, 1));
          maxAhead = Math.max(maxAhead, pulled - consumed);
          consumed += (chunk as Buffer).length;
          hash.update(chunk as Buffer);
        }
      });
      expect(consumed).toBe(data.length);
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      // The Readable's buffer (16 KiB) plus a chunk or two in flight, nowhere near the 4 MiB body.
      expect(maxAhead).toBeLessThan(128 * 1024);
    });
  });
});
