/**
 * eStargz (docs/formats.md): a gzip (or zstd) stream whose last tar entry, `stargz.index.json`, is the
 * TOC, located by a footer. Read for `inspect` (entry count, TOC digest check); a partial pull is
 * never attempted (no tar-split: reason no-tarsplit).
 */
import zlib from 'node:zlib';
import { type Digest, sha256 } from '../digest/index.js';
import { readTar } from './tar.js';
import { TocUnverifiableError } from './zstd-chunked.js';

/** The current footer: an empty gzip member whose extra field `SG` holds `%016xSTARGZ`. */
export const ESTARGZ_FOOTER = 51;
/** The legacy stargz footer: the same without the extra-field framing. */
export const LEGACY_STARGZ_FOOTER = 47;

/** The offset of the TOC's gzip member, read from the last 51 (or 47) bytes of the blob. */
export function estargzTocOffset(tail: Buffer): number {
  const current = tail.subarray(tail.length - ESTARGZ_FOOTER);
  const match = /^([0-9a-f]{16})STARGZ$/.exec(current.toString('latin1', 16, 38)) ?? legacyMatch(tail);
  if (!match) throw new TocUnverifiableError('eStargz footer not found');
  return Number.parseInt(match[1]!, 16);
}

function legacyMatch(tail: Buffer): RegExpExecArray | null {
  const legacy = tail.subarray(tail.length - LEGACY_STARGZ_FOOTER);
  return /^([0-9a-f]{16})STARGZ$/.exec(legacy.toString('latin1', 10, 32));
}

/** Reads and verifies the TOC from the bytes between its offset and the footer. */
export async function readEstargzToc(tocRegion: Buffer, expected: Digest): Promise<{ entries: number }> {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(tocRegion, { maxOutputLength: 512 * 1024 * 1024 });
  } catch (error) {
    throw new TocUnverifiableError(`eStargz TOC does not decompress: ${(error as Error).message}`);
  }
  let json: Buffer | undefined;
  let inToc = false;
  const parts: Buffer[] = [];
  for await (const token of readTar(
    (async function* () {
      yield tar;
    })(),
  )) {
    if (token.kind === 'entry') inToc = token.entry.name === 'stargz.index.json';
    else if (token.kind === 'data' && inToc) parts.push(token.bytes);
    else if (token.kind === 'end-entry' && inToc) json = Buffer.concat(parts);
  }
  if (!json) throw new TocUnverifiableError('eStargz TOC entry stargz.index.json not found');
  const actual = sha256(json);
  if (actual !== expected)
    throw new TocUnverifiableError(
      `eStargz TOC digest mismatch: the annotation says ${expected}, the blob holds ${actual}`,
    );
  return { entries: parseEntries(json) };
}

/**
 * The zstd variant: the TOC is a zstd frame located by the same 48-byte footer as the older
 * zstd:chunked (`GnUlInUx`), and toc.digest is the sha256 of the uncompressed TOC JSON.
 */
export function zstdEstargzTocPosition(footer: Buffer): {
  offset: number;
  length: number;
  uncompressedLength: number;
} {
  if (
    footer.length !== 48 ||
    footer.readUInt32LE(0) !== 0x184d2a50 ||
    footer.toString('latin1', 40, 48) !== 'GnUlInUx'
  ) {
    throw new TocUnverifiableError('zstd eStargz footer not found');
  }
  const n = (i: number) => Number(footer.readBigUInt64LE(8 + i * 8));
  return { offset: n(0), length: n(1), uncompressedLength: n(2) };
}

export function readZstdEstargzToc(json: Buffer, expected: Digest): { entries: number } {
  const actual = sha256(json);
  if (actual !== expected)
    throw new TocUnverifiableError(
      `eStargz TOC digest mismatch: the annotation says ${expected}, the blob holds ${actual}`,
    );
  return { entries: parseEntries(json) };
}

function parseEntries(json: Buffer): number {
  let toc: { entries?: unknown };
  try {
    toc = JSON.parse(json.toString('utf8'));
  } catch {
    throw new TocUnverifiableError('eStargz TOC is not JSON');
  }
  if (!Array.isArray(toc.entries)) throw new TocUnverifiableError('eStargz TOC has no entries');
  return toc.entries.length;
}
