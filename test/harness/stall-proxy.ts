// A loopback proxy in front of a registry that counts the blob bytes it forwards and, when told,
// stops forwarding them after a given number: the answer then hangs mid-body, so a test can kill
// the client at a point in the transfer it chose (not at a moment in time), and count what a
// resumed run fetches afterwards.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const isBlobGet = (method: string, path: string) =>
  method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}/.test(path);

export interface StallProxy {
  host: string;
  /** Blob body bytes forwarded since the last reset. */
  blobBytes(): number;
  reset(): void;
  /** After `bytes` more blob bytes, stop forwarding; resolves when that point is reached. */
  stallAfter(bytes: number): Promise<void>;
  /** Flips one bit of the blob byte at `offset` of every answer from now on (until reset). */
  flipAt(offset: number): void;
  /** Drops Range headers from now on (until reset): the registry answers 200 with the whole blob. */
  ignoreRanges(): void;
  stop(): Promise<void>;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const [targetHost, targetPort] = target.split(':');
  let forwarded = 0;
  let stall: { left: number; reached: () => void } | undefined;
  let flip: number | undefined;
  let noRanges = false;
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const headers = { ...req.headers };
    if (noRanges) delete headers.range;
    const upstream = http.request(
      { host: targetHost, port: Number(targetPort), method, path, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (!isBlobGet(method, path)) {
          answer.pipe(res);
          return;
        }
        let at = 0;
        answer.on('data', (chunk: Buffer) => {
          let piece = chunk;
          if (flip !== undefined && flip >= at && flip < at + piece.length) {
            piece = Buffer.from(piece);
            piece[flip - at] = piece[flip - at]! ^ 0x01;
          }
          at += chunk.length;
          if (stall) {
            if (stall.left <= 0) return;
            if (piece.length >= stall.left) {
              piece = piece.subarray(0, stall.left);
              stall.left = 0;
              answer.pause();
              stall.reached();
            } else stall.left -= piece.length;
          }
          forwarded += piece.length;
          res.write(piece);
        });
        answer.on('end', () => {
          if (!stall || stall.left > 0) res.end();
        });
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
  const { port } = server.address() as AddressInfo;

  return {
    host: `127.0.0.1:${port}`,
    blobBytes: () => forwarded,
    reset: () => {
      forwarded = 0;
      stall = undefined;
      flip = undefined;
      noRanges = false;
      for (const socket of sockets) socket.destroy();
    },
    stallAfter: (bytes) =>
      new Promise<void>((resolve) => {
        stall = { left: bytes, reached: resolve };
      }),
    flipAt: (offset) => {
      flip = offset;
    },
    ignoreRanges: () => {
      noRanges = true;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
