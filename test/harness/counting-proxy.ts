// A small HTTP proxy in front of a test registry that records every request, so tests can assert
// what a command transferred (blob GETs, uploads, mounts) rather than trusting its own report.
// It keeps the Host header, so the registry's upload Locations point back through the proxy.
import http from 'node:http';
import type net from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  status: number;
}

export interface CountingProxy {
  /** host:port to use instead of the registry's. */
  host: string;
  requests: RecordedRequest[];
  reset(): void;
  /** GETs of blob contents (`/v2/<name>/blobs/sha256:...`). */
  blobGets(): RecordedRequest[];
  /** Requests that carry or start blob uploads (POST/PATCH/PUT under `/blobs/uploads/`). */
  uploads(): RecordedRequest[];
  manifestPuts(): RecordedRequest[];
  /** The next request matching `match` has its connection dropped before it reaches the registry. */
  dropNext(match: (method: string, path: string) => boolean): void;
  stop(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const requests: RecordedRequest[] = [];
  let drop: ((method: string, path: string) => boolean) | undefined;
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    if (drop?.(method, path)) {
      drop = undefined;
      requests.push({ method, path, status: 0 });
      req.socket.destroy();
      return;
    }
    const upstream = http.request(
      { host: targetHost, port: Number(targetPort), method, path, headers: req.headers },
      (answer) => {
        requests.push({ method, path, status: answer.statusCode ?? 0 });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  const isBlobPath = (path: string) => /\/blobs\/sha256:[a-f0-9]{64}/.test(path);
  return {
    host: `127.0.0.1:${port}`,
    requests,
    reset: () => {
      requests.length = 0;
    },
    blobGets: () => requests.filter((r) => r.method === 'GET' && isBlobPath(r.path)),
    uploads: () =>
      requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.path.includes('/blobs/uploads/')),
    manifestPuts: () => requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')),
    dropNext: (match) => {
      drop = match;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
