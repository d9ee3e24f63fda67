// A range answer that delivers every range asked for and then loses its connection (seen through
// bench/big.mjs's counting proxy under load): the retry has nothing left to ask for. A fault a
// real registry will not produce on demand, so a loopback server plays it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/index.js';
import { RegistryClient } from '../../src/registry/client.js';

const digest = `sha256:${'ab'.repeat(32)}` as Digest;
let server: http.Server | undefined;
let client: RegistryClient | undefined;

afterEach(async () => {
  await client?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  client = undefined;
});

describe('fetchRanges', () => {
  it('ends without another request when the connection drops after every range was delivered', async () => {
    const gets: string[] = [];
    server = http.createServer((req, res) => {
      if (!req.url?.includes('/blobs/')) {
        res.writeHead(200).end('{}');
        return;
      }
      gets.push(String(req.headers.range));
      // The ten bytes asked for, then more of the body promised, then the connection is gone.
      res.writeHead(206, { 'content-range': 'bytes 0-9/100', 'content-type': 'application/octet-stream' });
      res.write(Buffer.from('0123456789'), () => setTimeout(() => req.socket.destroy(), 50));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new RegistryClient({ retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 } });
    const received: string[] = [];
    await client.fetchRanges(
      { endpoint: `127.0.0.1:${port}`, repository: 'app' },
      digest,
      [{ start: 0, end: 10 }],
      async (_range, data) => {
        for await (const piece of data) received.push(piece.toString());
      },
    );
    expect(received.join('')).toBe('0123456789');
    expect(gets).toEqual(['bytes=0-9']);
  });
});
