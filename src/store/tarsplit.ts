/**
 * skiff's own tar-split: the exact bytes of a layer's tar that are not file content (headers,
 * extension records, padding, the end-of-archive blocks), interleaved with the entries whose
 * contents sit in the object store. Written as zstd-compressed JSON lines, read back in order by
 * `save` (to rebuild the tar byte for byte) and `unpack` (for the entry list).
 *
 *   {"r":"<base64>"}          raw bytes to emit verbatim
 *   {"e":{...StoredEntry}}    an entry; for a non-empty file its `size` content bytes follow here
 */
import { once } from 'node:events';
import fs from 'node:fs';
import readline from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { CompressStream, DecompressStream } from 'zstd-napi';
import type { StoredEntry } from './records.js';

export type TarSplitRecord = { r: Buffer } | { e: StoredEntry };

const FLUSH_BYTES = 256 * 1024;

export class TarSplitWriter {
  private readonly compressor = new CompressStream({ compressionLevel: 3 });
  private readonly done: Promise<void>;
  private lines: string[] = [];
  private pendingBytes = 0;
  private pendingRaw: Buffer[] = [];

  constructor(path: string) {
    this.done = pipeline(this.compressor, fs.createWriteStream(path, { mode: 0o444 }));
    // Surface write errors through `finish`, not as unhandled rejections.
    this.done.catch(() => undefined);
  }

  /** Raw bytes; consecutive ones are merged into one record. */
  raw(bytes: Buffer): void {
    this.pendingRaw.push(bytes);
  }

  async entry(entry: StoredEntry): Promise<void> {
    this.flushRaw();
    this.push(JSON.stringify({ e: entry }));
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  async finish(): Promise<void> {
    this.flushRaw();
    await this.flush();
    this.compressor.end();
    await this.done;
  }

  /** Abandons the file (the caller removes the staging directory). */
  abort(): void {
    this.compressor.destroy();
  }

  private flushRaw(): void {
    if (this.pendingRaw.length === 0) return;
    const bytes = this.pendingRaw.length === 1 ? this.pendingRaw[0]! : Buffer.concat(this.pendingRaw);
    this.pendingRaw = [];
    this.push(`{"r":"${bytes.toString('base64')}"}`);
  }

  private push(line: string): void {
    this.lines.push(line);
    this.pendingBytes += line.length + 1;
  }

  private async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const chunk = `${this.lines.join('\n')}\n`;
    this.lines = [];
    this.pendingBytes = 0;
    if (!this.compressor.write(chunk)) await once(this.compressor, 'drain');
  }
}

/** Reads a tar-split file record by record. */
export async function* readTarSplit(path: string): AsyncGenerator<TarSplitRecord> {
  const decompressed = fs.createReadStream(path).pipe(new DecompressStream());
  const lines = readline.createInterface({ input: decompressed, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (line === '') continue;
      const record = JSON.parse(line) as { r?: string; e?: StoredEntry };
      if (record.r !== undefined) yield { r: Buffer.from(record.r, 'base64') };
      else if (record.e) yield { e: record.e };
    }
  } finally {
    lines.close();
    decompressed.destroy();
  }
}
