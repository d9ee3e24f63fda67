// multipart/byteranges as a real registry sends it (moved from test/unit/multipart.test.ts: it
// starts a registry, so it belongs to the integration project).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ContentRange,
  multipartBoundary,
  parseContentRange,
  readMultipartByteranges,
} from '../../src/registry/multipart.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { type RunningRegistry, startRegistry } from '../harness/registry.js';

interface TestPart {
  range: ContentRange;
  data: Buffer;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect(body: AsyncIterable<Uint8Array>, boundary: string): Promise<TestPart[]> {
  const out: TestPart[] = [];
  await readMultipartByteranges(body, boundary, async (range, data) => {
    out.push({ range, data: await readAll(data) });
  });
  return out;
}

/**
 * Against Debian's docker-registry (distribution 2.8, Go's http.ServeContent). What it sent, for a
 * 1 MiB blob:
 *
 * Multi-range (`Range: bytes=0-0,10-20,4096-700000`): 206, `Content-Type: multipart/byteranges;
 * boundary=<60 hex chars>`, `Content-Length` set, `Accept-Ranges: bytes`, `Docker-Content-Digest`,
 * `Etag: "sha256:…"`, no Content-Range. Body: `--B\r\nContent-Range: bytes 0-0/1048576\r\nContent-Type:
 * application/octet-stream\r\n\r\n<data>\r\n--B\r\n…<data>\r\n--B--\r\n` (no preamble, CRLF
 * everywhere). Parts come in request order, overlapping ranges are not merged, and unsatisfiable
 * ranges are dropped (if one range is left, the answer is a plain single-range 206).
 *
 * Single range (`Range: bytes=100-199`): 206, `Content-Type: application/octet-stream`,
 * `Content-Range: bytes 100-199/1048576`, `Content-Length: 100`, same other headers. A range past
 * the end is clamped (`bytes=1048570-1048599` gives `bytes 1048570-1048575/1048576`).
 *
 * Go ignores the Range header and answers 200 with the whole blob when the ranges' sizes add up to
 * more than the blob; a fully unsatisfiable Range gets 416 with `Content-Range: bytes *\/1048576`
 * and a Content-Length of the whole blob over a short text body (undici then fails reading it).
 */
describe('against a real registry', () => {
  let registry: RunningRegistry;
  let blobUrl: string;
  const blob = pseudoRandomBytes(1024 * 1024 + 123, 9);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

  beforeAll(async () => {
    registry = await startRegistry();
    const base = `http://${registry.host}`;
    const started = await fetch(`${base}/v2/skiff/ranges/blobs/uploads/`, { method: 'POST' });
    expect(started.status).toBe(202);
    const location = new URL(started.headers.get('location')!, base);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      body: blob,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(put.status).toBe(201);
    blobUrl = `${base}/v2/skiff/ranges/blobs/${digest}`;
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it('answers a multi-range request with multipart/byteranges that parse to the right slices', async () => {
    const wanted = [
      { start: 0, end: 1 },
      { start: 17, end: 40 },
      { start: 4096, end: 700_000 },
      { start: 900_001, end: 900_002 },
      { start: blob.length - 10, end: blob.length },
    ];
    const range = `bytes=${wanted.map((r) => `${r.start}-${r.end - 1}`).join(',')}`;
    const res = await fetch(blobUrl, { headers: { range } });
    expect(res.status).toBe(206);
    const boundary = multipartBoundary(res.headers.get('content-type') ?? '');
    expect(boundary).toBeDefined();
    const parts = await collect(res.body!, boundary!);
    expect(parts.map((p) => p.range)).toEqual(wanted.map((r) => ({ ...r, total: blob.length })));
    parts.forEach((p, i) => {
      expect(p.data.equals(blob.subarray(wanted[i]!.start, wanted[i]!.end)), `part ${i}`).toBe(true);
    });
  });

  it('answers a single range with a plain 206 and Content-Range', async () => {
    const res = await fetch(blobUrl, { headers: { range: 'bytes=100-199' } });
    expect(res.status).toBe(206);
    expect(multipartBoundary(res.headers.get('content-type') ?? '')).toBeUndefined();
    expect(parseContentRange(res.headers.get('content-range') ?? '')).toEqual({
      start: 100,
      end: 200,
      total: blob.length,
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(100, 200))).toBe(true);
  });
});
