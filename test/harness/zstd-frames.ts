// Building and feeding zstd streams as zstd:chunked blobs are: one frame per file, skippable frames
// between them, arriving in pieces as a network body does.
import { type Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A skippable frame (magic 0x184D2A5?, little-endian length), as zstd:chunked stores its TOC. */
export function skippable(payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/**
 * Feeds `blob` in pieces of `piece` bytes through `decoder` and whatever follows it, into a
 * Writable, as a layer's tar goes to the ingest: each pushed buffer arrives on its own (an async
 * iterator would join what is buffered and hide how it was pushed).
 */
export async function decodeInPieces(
  blob: Buffer,
  piece: number,
  decoder: Duplex,
  ...after: Duplex[]
): Promise<Buffer[]> {
  const pieces = [];
  for (let at = 0; at < blob.length; at += piece) pieces.push(blob.subarray(at, at + piece));
  const out: Buffer[] = [];
  const sink = new Writable({
    write(part: Buffer, _encoding, done) {
      out.push(part);
      done();
    },
  });
  await pipeline(Readable.from(pieces), decoder, ...after, sink);
  return out;
}
