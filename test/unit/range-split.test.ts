import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { splitPart } from '../../src/registry/range-split.js';

// A rejection nobody handles kills the CLI (bin/run.js turns it into an internal error): record
// them, rather than relying on the test runner to notice one after the test has passed.
const unhandled: unknown[] = [];
const record = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', record);
});
afterEach(() => {
  process.off('unhandledRejection', record);
});

/** A part body whose bytes arrive in pieces, a few event-loop turns apart, as from a socket. */
async function* slowPart(pieces: Buffer[], log: string[]): AsyncGenerator<Buffer> {
  for (const [i, piece] of pieces.entries()) {
    for (let turn = 0; turn < 5; turn++) await nextTurn();
    log.push(`piece ${i}`);
    yield piece;
  }
}

describe('splitPart', () => {
  it('a consumer that fails while the next bytes are still arriving: the error is rethrown, never unhandled, and the rest of the part is not read', async () => {
    const log: string[] = [];
    const pieces = [Buffer.alloc(100, 1), Buffer.alloc(100, 2), Buffer.alloc(100, 3)];
    const failure = new Error('chunk does not match its digest');
    const outcome = splitPart(slowPart(pieces, log), 0, [{ start: 0, end: 300 }], async (_range, data) => {
      for await (const _piece of data) throw failure;
    }).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(await outcome).toBe(failure);
    // Let any stray rejection surface before looking.
    for (let turn = 0; turn < 10; turn++) await nextTurn();
    expect(unhandled).toEqual([]);
    expect(log).not.toContain('piece 2');
  });

  it('delivers every wanted range of a part, skipping the bytes between them', async () => {
    const part = Buffer.from('0123456789abcdefghij');
    const seen: string[] = [];
    const delivered = await splitPart(
      slowPart([part.subarray(0, 7), part.subarray(7)], []),
      100,
      [
        { start: 102, end: 105 },
        { start: 110, end: 116 },
      ],
      async (range, data) => {
        const chunks: Buffer[] = [];
        for await (const chunk of data) chunks.push(chunk as Buffer);
        seen.push(`${range.start}:${Buffer.concat(chunks).toString()}`);
      },
    );
    expect(seen).toEqual(['102:234', '110:abcdef']);
    expect(delivered).toHaveLength(2);
    expect(unhandled).toEqual([]);
  });
});
