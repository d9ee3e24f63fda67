/**
 * A streaming reader for `multipart/byteranges` answers to multi-range requests (RFC 9110 §14.6,
 * RFC 2046 §5.1). Parts can be megabytes, so part data is never buffered whole: it is handed to the
 * caller as a Readable, and the body is only pulled as fast as the caller reads.
 */
import { Readable } from 'node:stream';
import { VerificationError } from '../errors/index.js';
import { MultipartTruncatedError } from '../ranges/index.js';
import { asBuffer } from '../util/streams.js';

/** A Content-Range, converted to a half-open range: `end` is exclusive. */
export interface ContentRange {
  start: number;
  end: number;
  total?: number;
}

const CR = 0x0d;
const LF = 0x0a;
/** Longest header or boundary line accepted: the server is not trusted to bound them. */
const MAX_LINE = 8 * 1024;
const MAX_HEADERS = 64;
/** How much preamble is skipped looking for the first boundary before calling the body garbage. */
const MAX_PREAMBLE = 64 * 1024;
/** How much epilogue is read (so the connection can be reused) before simply letting go of the body. */
const MAX_EPILOGUE = 64 * 1024;

/** Parses `bytes first-last/total` (total may be `*`); anything else is a VerificationError. */
export function parseContentRange(value: string): ContentRange {
  const text = value.trim();
  const match = /^bytes[ \t]+(\d+)-(\d+)\/(\d+|\*)$/i.exec(text);
  const invalid = () => new VerificationError(`invalid Content-Range ${JSON.stringify(text.slice(0, 100))}`);
  if (!match) throw invalid();
  const start = Number(match[1]);
  const last = Number(match[2]);
  const total = match[3] === '*' ? undefined : Number(match[3]);
  if (!Number.isSafeInteger(last) || start > last) throw invalid();
  if (total !== undefined && (!Number.isSafeInteger(total) || last >= total)) throw invalid();
  return total === undefined ? { start, end: last + 1 } : { start, end: last + 1, total };
}

/** The boundary of a `multipart/byteranges` Content-Type; undefined for any other type. */
export function multipartBoundary(contentType: string): string | undefined {
  const semicolon = contentType.indexOf(';');
  const type = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (type !== 'multipart/byteranges' || semicolon < 0) return undefined;
  const boundary = mediaTypeParameters(contentType.slice(semicolon)).get('boundary');
  return boundary && !/[\r\n]/.test(boundary) ? boundary : undefined;
}

/** Parses `; name=value; name="quoted \" value"` (RFC 9110 §5.6.6); stops at the first malformed one. */
function mediaTypeParameters(text: string): Map<string, string> {
  const params = new Map<string, string>();
  const pattern =
    /^[ \t]*;[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)|"((?:[^"\\]|\\.)*)")/;
  let rest = text;
  for (let match = pattern.exec(rest); match; match = pattern.exec(rest)) {
    const value = match[2] ?? (match[3] ?? '').replace(/\\(.)/g, '$1');
    params.set(match[1]!.toLowerCase(), value);
    rest = rest.slice(match[0].length);
  }
  return params;
}

/**
 * Reads a `multipart/byteranges` body part by part. For each part, `onPart` gets its Content-Range
 * and a Readable of exactly that part's bytes; the next part is only read once `onPart` has settled
 * and the part's bytes have all been read from the body (those `onPart` left unread are drained).
 * Malformed bodies throw a VerificationError; an error thrown by `onPart` is rethrown as is.
 */
export async function readMultipartByteranges(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
  onPart: (range: ContentRange, data: Readable) => Promise<void>,
): Promise<void> {
  if (boundary.length === 0 || /[\r\n]/.test(boundary))
    throw new Error(`invalid multipart boundary ${boundary}`);
  const reader = new BodyReader(body[Symbol.asyncIterator]());
  const dash = `--${boundary}`;
  try {
    await skipPreamble(reader, dash);
    while (await readDelimiterLine(reader, dash)) {
      const range = await readPartHeaders(reader);
      await deliverPart(reader, dash, range, onPart);
    }
    await reader.drain(MAX_EPILOGUE);
  } finally {
    await reader.release();
  }
}

/** Pulls chunks from the body only when the parser needs more bytes: that is what keeps it bounded. */
class BodyReader {
  /** Unparsed bytes; the parser consumes from the front. */
  buf: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly iterator: AsyncIterator<Uint8Array>) {}

  /** Appends the next chunk; false at the end of the body. */
  async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = asBuffer(next.value);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  consume(count: number): void {
    this.buf = this.buf.subarray(count);
  }

  /** Reads one line without its CR LF (or bare LF); at the end of the body, returns what is left. */
  async readLine(what: string): Promise<{ line: string; eof: boolean }> {
    for (;;) {
      const lf = this.buf.indexOf(LF);
      if (lf >= 0) {
        const end = lf > 0 && this.buf[lf - 1] === CR ? lf - 1 : lf;
        const line = this.buf.toString('latin1', 0, end);
        this.consume(lf + 1);
        return { line, eof: false };
      }
      if (this.buf.length > MAX_LINE)
        throw new VerificationError(`multipart ${what} is longer than ${MAX_LINE} bytes`);
      if (!(await this.fill())) {
        // A CR at the very end is the start of a line break the body was cut before.
        const end = this.buf.at(-1) === CR ? this.buf.length - 1 : this.buf.length;
        const line = this.buf.toString('latin1', 0, end);
        this.consume(this.buf.length);
        return { line, eof: true };
      }
    }
  }

  /** Reads and discards the rest of the body, up to `limit` bytes. */
  async drain(limit: number): Promise<void> {
    let seen = this.buf.length;
    this.consume(this.buf.length);
    while (seen <= limit && (await this.fill())) {
      seen += this.buf.length;
      this.consume(this.buf.length);
    }
  }

  /** Lets go of a body not read to its end (on errors), so the caller's connection is closed, not leaked. */
  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.iterator.return?.();
    } catch {
      // The body is being abandoned after an error already on its way; a failing close adds nothing.
    }
  }
}

/** Skips the preamble up to the first `--boundary` at the start of a line; the reader then sits on it. */
async function skipPreamble(reader: BodyReader, dash: string): Promise<void> {
  // A virtual LF in front makes "--boundary" at the very start of the body a line start like any other.
  reader.buf = Buffer.from('\n');
  const delimiter = Buffer.from(`\n${dash}`, 'latin1');
  let skipped = 0;
  for (;;) {
    const found = reader.buf.indexOf(delimiter);
    if (found >= 0) {
      reader.consume(found + 1);
      return;
    }
    const safe = reader.buf.length - delimiter.length;
    if (safe > 0) {
      skipped += safe;
      reader.consume(safe);
    }
    if (skipped > MAX_PREAMBLE || !(await reader.fill())) {
      throw new VerificationError(
        `multipart body has no "${dash}" boundary line: garbage instead of a boundary`,
      );
    }
  }
}

/** Reads a boundary line; true if a part follows it, false for the closing boundary. */
async function readDelimiterLine(reader: BodyReader, dash: string): Promise<boolean> {
  const { line, eof } = await reader.readLine('boundary line');
  // Transport padding (trailing blanks) is allowed after the boundary (RFC 2046 §5.1.1).
  const text = line.replace(/[ \t]+$/, '');
  if (text === `${dash}--`) return false;
  if (eof && `${dash}--`.startsWith(line)) throw truncated();
  if (text === dash && !eof) return true;
  if (text === dash) throw truncated();
  throw new VerificationError(
    `multipart body has garbage instead of a boundary: ${JSON.stringify(line.slice(0, 80))}`,
  );
}

/** Reads a part's header lines up to the blank line; returns its Content-Range, which must be there. */
async function readPartHeaders(reader: BodyReader): Promise<ContentRange> {
  let contentRange: string | undefined;
  for (let count = 0; ; count++) {
    const { line, eof } = await reader.readLine('part header line');
    if (eof) throw truncated();
    if (line === '') break;
    if (count >= MAX_HEADERS)
      throw new VerificationError(`multipart part has more than ${MAX_HEADERS} headers`);
    const colon = line.indexOf(':');
    if (colon <= 0)
      throw new VerificationError(`malformed multipart part header ${JSON.stringify(line.slice(0, 80))}`);
    if (line.slice(0, colon).trim().toLowerCase() !== 'content-range') continue;
    if (contentRange !== undefined)
      throw new VerificationError('multipart part has two Content-Range headers');
    contentRange = line.slice(colon + 1);
  }
  if (contentRange === undefined) throw new VerificationError('multipart part without Content-Range header');
  return parseContentRange(contentRange);
}

/** The body ended early: as likely a dropped connection as a broken server, so callers may retry. */
function truncated(): VerificationError {
  return new MultipartTruncatedError('multipart body truncated before the closing boundary');
}

/** Runs `onPart` on one part while feeding it the part's bytes; settles when both are done. */
async function deliverPart(
  reader: BodyReader,
  dash: string,
  range: ContentRange,
  onPart: (range: ContentRange, data: Readable) => Promise<void>,
): Promise<void> {
  const part = new PartStream();
  // Parse errors reach the caller through our own rejection; without a listener, destroying the
  // part with one would crash the process when the consumer is not listening.
  part.on('error', () => {});
  const handler = part.watch(new Promise<void>((resolve) => resolve(onPart(range, part))));
  try {
    await pumpPart(reader, dash, range, part);
    if (!part.destroyed) part.push(null);
  } catch (error) {
    part.destroy(error instanceof Error ? error : new Error(String(error)));
    await handler;
    throw error;
  }
  const outcome = await handler;
  if (outcome.failed) throw outcome.error;
}

/**
 * Streams the part's data to `part`, up to the next `\n--boundary` (whose preceding CR, if any, is
 * not data), checking its length against the Content-Range. Leaves the reader on the boundary line.
 */
async function pumpPart(
  reader: BodyReader,
  dash: string,
  range: ContentRange,
  part: PartStream,
): Promise<void> {
  const delimiter = Buffer.from(`\n${dash}`, 'latin1');
  const expected = range.end - range.start;
  let seen = 0;
  for (;;) {
    const found = reader.buf.indexOf(delimiter);
    if (found >= 0) {
      const length = dataLength(reader.buf, found, expected - seen);
      if (seen + length !== expected) throw lengthMismatch(range, seen + length);
      await part.send(reader.buf.subarray(0, length));
      reader.consume(found + 1);
      return;
    }
    // Everything but the last delimiter.length bytes is data: a delimiter (and its CR) can only start after.
    const safe = reader.buf.length - delimiter.length;
    if (safe > 0) {
      if (seen + safe > expected) throw lengthMismatch(range);
      await part.send(reader.buf.subarray(0, safe));
      seen += safe;
      reader.consume(safe);
    }
    if (!(await reader.fill())) throw truncated();
  }
}

/**
 * The data length before a delimiter found at `lf`. A CR before it belongs to the line break, unless
 * the body uses bare LFs and the data ends in CR: the Content-Range says which.
 */
function dataLength(buf: Buffer, lf: number, remaining: number): number {
  const withCr = lf > 0 && buf[lf - 1] === CR;
  return withCr && lf !== remaining ? lf - 1 : lf;
}

function lengthMismatch(range: ContentRange, actual?: number): VerificationError {
  const claimed = `Content-Range bytes ${range.start}-${range.end - 1} (${range.end - range.start} bytes)`;
  return new VerificationError(
    actual === undefined
      ? `multipart part is longer than its ${claimed}`
      : `multipart part has ${actual} bytes but its ${claimed}`,
  );
}

type Outcome = { failed: false } | { failed: true; error: unknown };

/**
 * The Readable handed to `onPart`. The feeder pushes into it and waits for the consumer to ask for
 * more when its buffer is full; once `onPart` has settled or the consumer destroyed the stream, what
 * is left of the part is drained instead of pushed.
 */
class PartStream extends Readable {
  private wanted = false;
  private wake: (() => void) | undefined;
  private outcome: Outcome | undefined;

  constructor() {
    // What a part may hold unread, whatever Node's default (16 KiB up to Node 20, 64 KiB since 22).
    super({ highWaterMark: 16 * 1024 });
  }

  /** Records how `onPart` settled, and wakes the feeder so it stops waiting on a consumer that left. */
  watch(handler: Promise<void>): Promise<Outcome> {
    return handler.then(
      () => this.settle({ failed: false }),
      (error: unknown) => this.settle({ failed: true, error }),
    );
  }

  /** Pushes a chunk, waiting while the consumer's buffer is full; throws if `onPart` failed. */
  async send(chunk: Buffer): Promise<void> {
    this.check();
    if (chunk.length === 0 || this.destroyed || this.outcome) return;
    this.wanted = false;
    if (this.push(chunk)) return;
    await new Promise<void>((resolve) => {
      if (this.wanted || this.destroyed || this.outcome) resolve();
      else this.wake = resolve;
    });
    this.check();
  }

  override _read(): void {
    this.wanted = true;
    this.notify();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.notify();
    callback(error);
  }

  private settle(outcome: Outcome): Outcome {
    this.outcome = outcome;
    // onPart is done with the stream: free what it left buffered and drain the rest.
    if (!outcome.failed && !this.readableEnded) this.destroy();
    this.notify();
    return outcome;
  }

  private check(): void {
    if (this.outcome?.failed) throw this.outcome.error;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
