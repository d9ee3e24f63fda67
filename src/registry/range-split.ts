/**
 * Carves the ranges a caller asked for out of the parts a server answered with. Servers may merge
 * ranges, answer one big range, or send exactly what was asked; the caller sees the same thing.
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { type ByteRange, PartTruncatedError, type RangeConsumer } from '../ranges/index.js';

/**
 * Streams `part` (covering [partStart, …)) and hands every wanted range inside it to `onRange` as
 * its own stream. Returns the wanted ranges that were delivered in full. Backpressure flows from
 * each consumer to `part`; bytes between wanted ranges are skipped.
 */
export async function splitPart(
  part: AsyncIterable<Uint8Array>,
  partStart: number,
  wanted: readonly ByteRange[],
  onRange: RangeConsumer,
): Promise<ByteRange[]> {
  const delivered: ByteRange[] = [];
  let pos = partStart;
  let next = 0;
  let current: Delivery | undefined;
  const finishCurrent = async () => {
    const c = current!;
    c.sink.end();
    await c.done;
    delivered.push(c.range);
    current = undefined;
    next++;
  };
  try {
    for await (const chunk of part) {
      let offset = 0;
      while (offset < chunk.length) {
        if (!current) {
          const range = wanted[next];
          if (!range) break; // trailing bytes nobody asked for
          if (pos < range.start) {
            const skip = Math.min(range.start - pos, chunk.length - offset);
            pos += skip;
            offset += skip;
            continue;
          }
          current = startRange(range, onRange);
          if (range.end === range.start) {
            await finishCurrent();
            continue;
          }
        }
        const take = Math.min(current.range.end - pos, chunk.length - offset);
        await writeWithBackpressure(current, chunk.subarray(offset, offset + take));
        pos += take;
        offset += take;
        if (pos === current.range.end) await finishCurrent();
      }
    }
  } catch (error) {
    if (current) {
      current.sink.destroy(error as Error);
      await current.done.catch(() => undefined);
    }
    throw error;
  }
  if (current) {
    const error = new PartTruncatedError(`range ${current.range.start}-${current.range.end} ended at ${pos}`);
    current.sink.destroy(error);
    await current.done.catch(() => undefined);
    throw error;
  }
  return delivered;
}

/** A wanted range being streamed to its consumer, and how the consumer has settled. */
interface Delivery {
  range: ByteRange;
  sink: PassThrough;
  done: Promise<void>;
  settled: boolean;
  failure?: { error: unknown };
}

function startRange(range: ByteRange, onRange: RangeConsumer): Delivery {
  const sink = new PassThrough({ highWaterMark: 256 * 1024 });
  const entry: Delivery = { range, sink, done: Promise.resolve(), settled: false };
  entry.done = onRange(range, sink).then(
    () => {
      entry.settled = true;
    },
    (error: unknown) => {
      entry.settled = true;
      entry.failure = { error };
      throw error;
    },
  );
  // The consumer may fail (a chunk that does not verify) while the feeder is waiting for the next
  // body bytes, before anyone awaits `done`: a rejection without a handler then kills the process.
  // Handled here, it is still seen: the feeder rethrows `failure` on its next write, and awaiting
  // `done` rejects as well.
  entry.done.catch(() => undefined);
  return entry;
}

async function writeWithBackpressure(current: Delivery, piece: Uint8Array): Promise<void> {
  // A consumer that failed ends the part now: reading the rest of it would only delay the error.
  if (current.failure) throw current.failure.error;
  // A consumer that already returned no longer reads: drop its bytes, keep going.
  if (current.settled || current.sink.destroyed) return;
  if (!current.sink.write(piece)) {
    // The listeners of whichever event does not happen are removed, so waits do not pile up.
    const settled = new AbortController();
    try {
      await Promise.race([
        once(current.sink, 'drain', { signal: settled.signal }),
        once(current.sink, 'close', { signal: settled.signal }),
        current.done,
      ]);
    } finally {
      settled.abort();
    }
  }
}
