/** Stream helpers. */
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * stream.pipeline over a chain built at run time (optional decrypt/decompress stages), ending in
 * an async consumer. Node's typings only cover fixed-length chains, hence this one typed door.
 */
export function pipeChain(
  stages: [Readable, ...Duplex[]],
  consume: (source: AsyncIterable<Buffer>) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const run = pipeline as unknown as (...args: unknown[]) => Promise<void>;
  return signal ? run(...stages, consume, { signal }) : run(...stages, consume);
}

/** A chunk as a Buffer: a view of the same bytes when it is a plain Uint8Array, never a copy. */
export function asBuffer(chunk: Buffer | Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
