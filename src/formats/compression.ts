/** Decompression streams for layer blobs. */
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { Compression } from '../manifest/media-types.js';
import { zstd } from './zstd-native.js';

/** A decompressing transform, or undefined for an uncompressed tar. */
export function decompressor(compression: Compression): Transform | undefined {
  switch (compression) {
    case 'gzip':
      // Multi-member gzip (eStargz is one member per file) is decoded as one stream.
      // Large output chunks: fewer callbacks on the parsing thread (256 KiB: few callbacks, little memory held by views of them).
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      // Skippable frames (zstd:chunked's TOC, tar-split and footer) are skipped by the decoder.
      return new (zstd().DecompressStream)();
    case 'none':
      return undefined;
  }
}
