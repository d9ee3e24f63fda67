// A loopback reverse proxy in front of a real registry that breaks blob answers on demand, for the
// network faults a real registry will not produce: resets, 5xx, 429, truncation, flipped or shifted
// bytes, an ignored Range, a lying Content-Range, and the same faults inside ONE part of a
// multi-range (multipart/byteranges) answer. Unlike the msw stand-in it is plain node:http, so the
// CLI (bin/run.js in a child process) can pull through it. Requests no rule matches are piped to the
// registry untouched (Host kept, so upload Locations point back here). A faulted blob answer is
// built by the proxy itself from the whole blob (fetched once from the registry): a plain 206 for
// one range, Go's multipart/byteranges layout (as distribution writes it) for several.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';

export type FaultMode =
  /** Drop the connection after `afterBytes` body bytes (0: before any header). */
  | { kind: 'reset'; afterBytes?: number }
  /** Answer with this status (and Retry-After, for 429/503) instead. */
  | { kind: 'status'; status: number; retryAfter?: string }
  /** End the body cleanly (chunked encoding) after `keep` bytes: a broken cache, not a reset. */
  | { kind: 'truncate'; keep: number }
  /** Flip the middle byte of every range served (of the blob, for a whole-blob answer). */
  | { kind: 'flip' }
  /** Shift every range's data `by` bytes later (zeros in front, the tail dropped): same length. */
  | { kind: 'shift'; by?: number }
  /** Answer 200 with the whole blob, as a server without range support does. */
  | { kind: 'ignore-range' }
  /** Label a single-range answer `bytes s+by-(e+by+grow)` while sending the bytes asked for. */
  | { kind: 'lie-range'; by: number; grow?: number }
  /** Flip the middle byte of part `part` of a multi-range answer only. */
  | { kind: 'part-flip'; part: number }
  /** Shift the data of part `part` of a multi-range answer `by` bytes later (same length). */
  | { kind: 'part-shift'; part: number; by?: number }
  /**
   * Give part `part` of a multi-range answer a wrong Content-Range: 'shift' moves the label one
   * byte on, 'grow' makes it 16 bytes longer than the data, 'swap' gives it the next part's label.
   */
  | { kind: 'part-mislabel'; part: number; how: 'shift' | 'grow' | 'swap' };

export interface FaultRule {
  /** The blob whose GETs are faulted. */
  digest: string;
  /** Which GETs: without Range ('full'), with any Range ('range'), with several ('multi-range'). */
  on?: 'any' | 'full' | 'range' | 'multi-range';
  /** Matching requests passed through untouched before the fault starts. */
  skip?: number;
  /** Matching requests faulted (after `skip`); all of them when absent. */
  times?: number;
  mode: FaultMode;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
  status: number;
  /** The mode that broke this answer, if any. */
  fault: FaultMode['kind'] | undefined;
}

export interface FaultProxy {
  /** host:port to pull from (loopback: plain HTTP without a flag). */
  readonly host: string;
  readonly requests: ProxiedRequest[];
  /** Replaces the rules and clears the request log. */
  set(...rules: FaultRule[]): void;
  /** GETs of one blob, in arrival order. */
  blobGets(digest: string): ProxiedRequest[];
  /** Problems of the proxy itself (an upstream that failed): a test should expect none. */
  readonly errors: string[];
  stop(): Promise<void>;
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;

interface ByteRange {
  start: number;
  end: number;
}

/** @param target host:port of the registry */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const requests: ProxiedRequest[] = [];
  const errors: string[] = [];
  const sockets = new Set<net.Socket>();
  const blobs = new Map<string, Promise<{ bytes: Buffer; contentType: string }>>();
  let rules: Array<FaultRule & { seen: number }> = [];

  const upstream = (req: http.IncomingMessage, headers: http.OutgoingHttpHeaders) =>
    http.request({ host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers });

  const pipeThrough = (req: http.IncomingMessage, res: http.ServerResponse, record: ProxiedRequest) => {
    const forward = upstream(req, req.headers);
    forward.on('response', (answer) => {
      record.status = answer.statusCode ?? 0;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  };

  /** The whole blob as the registry serves it, fetched once per digest. */
  const wholeBlob = (req: http.IncomingMessage, digest: string) => {
    let pending = blobs.get(digest);
    if (!pending) {
      pending = new Promise((resolve, reject) => {
        const { range: _range, ...headers } = req.headers;
        const get = upstream(req, headers);
        get.on('response', (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            if (answer.statusCode !== 200)
              reject(new Error(`whole blob ${digest}: HTTP ${answer.statusCode}`));
            else
              resolve({
                bytes: Buffer.concat(chunks),
                contentType: answer.headers['content-type'] ?? 'application/octet-stream',
              });
          });
          answer.on('error', reject);
        });
        get.on('error', reject);
        get.end();
      });
      blobs.set(digest, pending);
      pending.catch(() => blobs.delete(digest));
    }
    return pending;
  };

  const ruleFor = (req: http.IncomingMessage, digest: string) => {
    const ranges = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    const kind = ranges === undefined ? 'full' : ranges.includes(',') ? 'multi-range' : 'range';
    for (const rule of rules) {
      if (rule.digest !== digest) continue;
      const on = rule.on ?? 'any';
      if (on !== 'any' && on !== kind && !(on === 'range' && kind === 'multi-range')) continue;
      const index = rule.seen++;
      if (index < (rule.skip ?? 0)) return undefined;
      if (rule.times !== undefined && index >= (rule.skip ?? 0) + rule.times) return undefined;
      return rule;
    }
    return undefined;
  };

  const serveFault = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    digest: string,
    mode: FaultMode,
    record: ProxiedRequest,
  ) => {
    req.resume();
    if (mode.kind === 'status') {
      record.status = mode.status;
      res.writeHead(mode.status, {
        'content-type': 'application/json',
        ...(mode.retryAfter ? { 'retry-after': mode.retryAfter } : {}),
      });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"fault proxy"}]}');
      return;
    }
    if (mode.kind === 'reset' && !mode.afterBytes) {
      req.socket.destroy();
      return;
    }
    const blob = await wholeBlob(req, digest);
    const header = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    const answer =
      header === undefined || mode.kind === 'ignore-range'
        ? wholeAnswer(blob.bytes, blob.contentType, mode)
        : rangedAnswer(blob.bytes, blob.contentType, parseRangeHeader(header, blob.bytes.length), mode);
    record.status = answer.status;
    if (mode.kind === 'truncate') {
      const { 'content-length': _length, ...headers } = answer.headers;
      res.writeHead(answer.status, headers);
      res.end(answer.body.subarray(0, mode.keep));
      return;
    }
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
    if (mode.kind === 'reset') {
      res.write(answer.body.subarray(0, mode.afterBytes), () => req.socket.destroy());
      return;
    }
    res.end(answer.body);
  };

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const record: ProxiedRequest = {
      method: req.method ?? 'GET',
      path,
      range: typeof req.headers.range === 'string' ? req.headers.range : undefined,
      status: 0,
      fault: undefined,
    };
    requests.push(record);
    const digest = BLOB_PATH.exec(path.split('?')[0]!)?.[2];
    const rule = req.method === 'GET' && digest ? ruleFor(req, digest) : undefined;
    if (!rule || !digest) {
      pipeThrough(req, res, record);
      return;
    }
    record.fault = rule.mode.kind;
    serveFault(req, res, digest, rule.mode, record).catch((error: unknown) => {
      errors.push(`${path}: ${(error as Error).message}`);
      res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  return {
    host: `127.0.0.1:${port}`,
    requests,
    errors,
    set: (...next) => {
      rules = next.map((rule) => ({ ...rule, seen: 0 }));
      requests.length = 0;
      errors.length = 0;
    },
    blobGets: (digest) => requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function wholeAnswer(blob: Buffer, contentType: string, mode: FaultMode): Answer {
  return { status: 200, headers: { 'content-type': contentType }, body: mutate(blob, mode) };
}

/** Flip and shift apply to every range; the part-* modes to their one part. */
function mutate(data: Buffer, mode: FaultMode, part?: number): Buffer {
  const applies = (kind: FaultMode['kind']) =>
    mode.kind === kind && (!('part' in mode) || mode.part === part);
  if (applies('flip') || applies('part-flip')) {
    const out = Buffer.from(data);
    out[out.length >> 1] = out[out.length >> 1]! ^ 0xff;
    return out;
  }
  if (applies('shift') || applies('part-shift')) {
    const by = Math.min(data.length, (mode as { by?: number }).by ?? 1);
    return Buffer.concat([Buffer.alloc(by), data.subarray(0, data.length - by)]);
  }
  return data;
}

/** Parses `bytes=a-b,c-,…` against a blob of `total` bytes; open ends run to the end. */
function parseRangeHeader(value: string, total: number): ByteRange[] {
  const match = /^bytes=(.+)$/.exec(value.trim());
  if (!match) throw new Error(`unsupported Range header ${value}`);
  return match[1]!.split(',').map((spec) => {
    const [first, last] = spec.trim().split('-');
    const start = Number(first);
    const end = last === '' || last === undefined ? total : Math.min(Number(last) + 1, total);
    if (!Number.isSafeInteger(start) || !(start < end)) throw new Error(`bad range ${spec}`);
    return { start, end };
  });
}

function rangedAnswer(blob: Buffer, contentType: string, ranges: ByteRange[], mode: FaultMode): Answer {
  const total = blob.length;
  const label = (r: ByteRange) => `bytes ${r.start}-${r.end - 1}/${total}`;
  const data = ranges.map((r, i) => mutate(Buffer.from(blob.subarray(r.start, r.end)), mode, i));
  if (ranges.length === 1) {
    const r = ranges[0]!;
    const claimed =
      mode.kind === 'lie-range'
        ? { start: r.start + mode.by, end: Math.min(total, r.end + mode.by + (mode.grow ?? 0)) }
        : r;
    return {
      status: 206,
      headers: { 'content-type': contentType, 'content-range': label(claimed) },
      body: data[0]!,
    };
  }
  const labels = ranges.map((r, i) => {
    if (mode.kind !== 'part-mislabel' || mode.part !== i) return label(r);
    if (mode.how === 'shift') return label({ start: r.start + 1, end: Math.min(total, r.end + 1) });
    if (mode.how === 'grow') return label({ start: r.start, end: Math.min(total, r.end + 16) });
    return label(ranges[(i + 1) % ranges.length]!);
  });
  const boundary = randomBytes(15).toString('hex');
  const pieces: Buffer[] = [];
  for (const [i, piece] of data.entries()) {
    const head = `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: ${labels[i]}\r\n\r\n`;
    pieces.push(Buffer.from(head, 'latin1'), piece);
  }
  pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
  return {
    status: 206,
    headers: { 'content-type': `multipart/byteranges; boundary=${boundary}` },
    body: Buffer.concat(pieces),
  };
}
