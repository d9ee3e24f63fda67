/** Stream helpers. */
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * stream.pipeline over a chain built at run time (optional decrypt/decompress stages), ending in
 * an async consumer. Node's typings only cover fixed-length chains, hence this one typed door.
 */
export function pipeChain(
  stages: [Readable, ...Transform[]],
  consume: (source: AsyncIterable<Buffer>) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const run = pipeline as unknown as (...args: unknown[]) => Promise<void>;
  return signal ? run(...stages, consume, { signal }) : run(...stages, consume);
}
