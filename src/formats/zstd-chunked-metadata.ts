/**
 * The two metadata streams of a zstd:chunked layer, each compressed into one zstd frame as it
 * grows: the TOC (JSON, containers/storage's minimal.TOC) and the tar-split (JSON lines, as
 * vbatts/tar-split's JSON packer writes them). Both are written the way Go's encoders write them,
 * field order and escaping included, so they come out byte for byte as skopeo's do.
 */
import type { Digest } from '../digest/index.js';
import { UnconvertibleLayerError } from './tar-go-header.js';
import type { TocEntry } from './zstd-chunked.js';
import { MemoryFrame } from './zstd-frames.js';

/** A metadata stream (TOC or tar-split) compressed into one zstd frame as it is written. */
class MetadataFrame {
  private readonly frame: MemoryFrame;

  constructor(level: number) {
    this.frame = new MemoryFrame(level);
  }

  write(text: string): void {
    this.frame.write(Buffer.from(text, 'utf8'));
  }

  finish(): { compressed: Buffer; uncompressed: number } {
    return { compressed: this.frame.finish(), uncompressed: this.frame.uncompressed };
  }
}

/** The tar-split: JSON lines of raw segments and file records, as vbatts/tar-split packs them. */
export class TarSplitWriter {
  private readonly frame: MetadataFrame;
  private position = 0;
  /** Go's packer refuses two file records whose cleaned names collide; so must we. */
  private readonly seen = new Set<string>();

  constructor(level: number) {
    this.frame = new MetadataFrame(level);
  }

  segment(bytes: Buffer): void {
    this.line({ type: 2, payload: bytes.toString('base64'), position: this.position });
  }

  file(name: Buffer, size: number, crc: Buffer | undefined): void {
    const key = goClean(name.toString('latin1'));
    if (this.seen.has(key)) {
      throw new UnconvertibleLayerError(
        `the layer has two entries for "${name.toString('utf8')}", which tar-split cannot record`,
      );
    }
    this.seen.add(key);
    const text = name.toString('utf8');
    // tar-split keeps a name that is not valid UTF-8 as raw bytes (name_raw).
    const named = Buffer.from(text, 'utf8').equals(name)
      ? { name: text }
      : { name_raw: name.toString('base64') };
    this.line({
      type: 1,
      ...named,
      ...(size > 0 ? { size } : {}),
      payload: crc ? crc.toString('base64') : null,
      position: this.position,
    });
  }

  finish(): { compressed: Buffer; uncompressed: number } {
    return this.frame.finish();
  }

  private line(record: Record<string, unknown>): void {
    this.frame.write(`${goJson(record)}\n`);
    this.position++;
  }
}

/** The TOC: `{"version":1,"entries":[...],"tarSplitDigest":"..."}`, entries streamed in. */
export class TocWriter {
  private readonly frame: MetadataFrame;
  private count = 0;

  constructor(level: number) {
    this.frame = new MetadataFrame(level);
    this.frame.write('{"version":1,"entries":[');
  }

  add(entry: TocEntry): void {
    this.frame.write((this.count++ === 0 ? '' : ',') + goJson(entry));
  }

  finish(tarSplitDigest: Digest): { compressed: Buffer; uncompressed: number } {
    this.frame.write(`],"tarSplitDigest":${goJson(tarSplitDigest)}}`);
    return this.frame.finish();
  }
}

/** JSON as Go's encoding/json writes it: like JSON.stringify, but with <, >, & and U+2028/9 escaped. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Go's path.Clean, by which tar-split compares names. */
function goClean(name: string): string {
  const rooted = name.startsWith('/');
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length > 0 && parts.at(-1) !== '..') parts.pop();
      else if (!rooted) parts.push('..');
    } else parts.push(part);
  }
  const joined = (rooted ? '/' : '') + parts.join('/');
  return joined === '' ? '.' : joined;
}
