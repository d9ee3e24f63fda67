// A small HTTP proxy in front of a registry that records every request and the body bytes it
// answered with, so tests and benchmarks count what a command transferred (blob GETs, uploads,
// mounts) rather than trusting its own report. It keeps the Host header, so the registry's upload
// Locations point back through the proxy. Shared by test/harness and bench/.
import http from 'node:http';

const isBlobPath = (path) => /\/blobs\/sha256:[a-f0-9]{64}/.test(path);

/** @param {string} target host:port of the registry */
export async function startCountingProxy(target) {
  const [targetHost, targetPort] = target.split(':');
  const requests = [];
  // Requests in flight (from arrival until the answer is sent whole or the exchange fails), the
  // most seen at once, and every blob answer's chunks in arrival order (who progressed when).
  let inFlight = 0;
  let maxInFlight = 0;
  const events = [];
  let drop;
  const sockets = new Set();
  // Connections opened by clients since start or reset (a client that reuses them opens few).
  let connections = 0;

  // skopeo asks for up to 1024 ranges in one request: a Range header far over Node's 16 KiB default.
  const server = http.createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      inFlight--;
    };
    res.on('close', settle);
    if (drop?.(method, path)) {
      drop = undefined;
      requests.push({ method, path, status: 0, bytes: 0 });
      req.socket.destroy();
      return;
    }
    const upstream = http.request(
      { host: targetHost, port: Number(targetPort), method, path, headers: req.headers },
      (answer) => {
        const record = { method, path, status: answer.statusCode ?? 0, bytes: 0 };
        requests.push(record);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const blob = method === 'GET' && isBlobPath(path);
        answer.on('data', (chunk) => {
          record.bytes += chunk.length;
          if (blob) events.push({ path, bytes: chunk.length });
        });
        if (blob) answer.on('end', () => events.push({ path, bytes: 0, end: true }));
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();

  return {
    host: `127.0.0.1:${port}`,
    requests,
    reset: () => {
      requests.length = 0;
      events.length = 0;
      maxInFlight = inFlight;
      connections = 0;
    },
    connections: () => connections,
    maxInFlight: () => maxInFlight,
    blobEvents: () => events,
    blobGets: () => requests.filter((r) => r.method === 'GET' && isBlobPath(r.path)),
    blobBytes: () =>
      requests.filter((r) => r.method === 'GET' && isBlobPath(r.path)).reduce((sum, r) => sum + r.bytes, 0),
    uploads: () =>
      requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.path.includes('/blobs/uploads/')),
    manifestPuts: () => requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')),
    dropNext: (match) => {
      drop = match;
    },
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
