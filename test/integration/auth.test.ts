// Registry authentication as registries do it (docs/design.md §2): Bearer tokens from a token server driven
// by WWW-Authenticate, Basic auth, credentials from flags and auth files, and Authorization never
// sent to another host on a redirect. An msw stand-in in front of the real registry plays the
// token server and the redirecting storage; the registry behind it serves the bytes.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { HttpResponse, http as msw, passthrough } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type RunningRegistry, startRegistry } from '../harness/registry.js';
import { type StandIn, startStandIn } from '../harness/standin.js';

const registry = inject('registry');
const USER = 'alice';
const PASSWORD = 's3cr:et-pässword';
const TOKEN = 'tok-4b1d-never-printed';
let standin: StandIn;
let storage: {
  host: string;
  seen: Array<{ path: string; authorization: string | undefined }>;
  close(): Promise<void>;
};
let work: { dir: string; cleanup: () => void };
let tokenRequests: Array<{ authorization: string | null; scope: string | null; service: string | null }>;

/** Plays object storage: blob GETs are redirected here, and it records the headers it got. */
async function startStorage(): Promise<typeof storage> {
  const seen: Array<{ path: string; authorization: string | undefined }> = [];
  const server = http.createServer(async (req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    const upstream = await fetch(`http://${registry}${req.url}`);
    res.writeHead(upstream.status, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * A registry requiring Bearer tokens from its token server, which wants Basic credentials; blob
 * GETs are redirected to `blobHost` (the storage server by default).
 */
function bearerRegistry(blobHost = storage.host) {
  standin.use(
    msw.get('*/token', ({ request }) => {
      const url = new URL(request.url);
      const authorization = request.headers.get('authorization');
      tokenRequests.push({
        authorization,
        scope: url.searchParams.get('scope'),
        service: url.searchParams.get('service'),
      });
      if (authorization !== basic(USER, PASSWORD))
        return new HttpResponse('{"details":"bad credentials"}', { status: 401 });
      return HttpResponse.json({ token: TOKEN, expires_in: 300 });
    }),
    msw.all('*/v2/*', ({ request }) => {
      if (request.headers.get('authorization') !== `Bearer ${TOKEN}`) {
        return new HttpResponse('{"errors":[{"code":"UNAUTHORIZED"}]}', {
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="http://${standin.host}/token",service="skiff-test"` },
        });
      }
      const url = new URL(request.url);
      if (request.method === 'GET' && /\/blobs\/sha256:/.test(url.pathname)) {
        return new HttpResponse(null, {
          status: 307,
          headers: { location: `http://${blobHost}${url.pathname}` },
        });
      }
      return passthrough();
    }),
  );
}

/** The same with Basic auth on the registry itself. */
function basicRegistry(blobHost: string) {
  standin.use(
    msw.all('*/v2/*', ({ request }) => {
      if (request.headers.get('authorization') !== basic(USER, PASSWORD)) {
        return new HttpResponse(null, {
          status: 401,
          headers: { 'www-authenticate': 'Basic realm="skiff-test"' },
        });
      }
      const url = new URL(request.url);
      if (request.method === 'GET' && /\/blobs\/sha256:/.test(url.pathname)) {
        return new HttpResponse(null, {
          status: 307,
          headers: { location: `http://${blobHost}${url.pathname}` },
        });
      }
      return passthrough();
    }),
  );
}

beforeAll(async () => {
  work = tempDir('skiff-auth-');
  standin = await startStandIn(registry);
  storage = await startStorage();
});
afterAll(async () => {
  await standin?.close();
  await storage?.close();
  work?.cleanup();
});
beforeEach(() => {
  standin.reset();
  storage.seen.length = 0;
  tokenRequests = [];
});

let n = 0;
const store = () => path.join(work.dir, `store-${n++}`);
const noSecrets = (text: string) => {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain(TOKEN);
  expect(text).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
};

/** The fixture image through the Bearer stand-in, with the right credentials, into a fresh store. */
const pullWithCreds = () =>
  runCli(['pull', `${standin.host}/fixtures/gzip:latest`, '--creds', `${USER}:${PASSWORD}`], {
    SKIFF_STORE: store(),
  });

describe('Bearer tokens', () => {
  it('pulls with --creds: the token server gets Basic credentials and the repository scope', async () => {
    bearerRegistry();
    const result = await pullWithCreds();
    expect(result.code, result.stderr).toBe(0);
    noSecrets(result.stdout + result.stderr);
    expect(tokenRequests.length).toBeGreaterThan(0);
    expect(tokenRequests.every((t) => t.authorization === basic(USER, PASSWORD))).toBe(true);
    expect(tokenRequests.map((t) => t.scope)).toContain('repository:fixtures/gzip:pull');
    expect(tokenRequests[0]?.service).toBe('skiff-test');
    // The token is reused, not fetched for every request.
    expect(tokenRequests.length).toBeLessThanOrEqual(2);
  });

  it('never sends Authorization to the other host a blob GET is redirected to', async () => {
    bearerRegistry();
    const result = await pullWithCreds();
    expect(result.code, result.stderr).toBe(0);
    expect(storage.seen.length).toBeGreaterThanOrEqual(3);
    expect(storage.seen.every((s) => s.authorization === undefined)).toBe(true);
  });

  it('reads credentials from $REGISTRY_AUTH_FILE', async () => {
    bearerRegistry();
    const authFile = path.join(work.dir, 'auth.json');
    fs.writeFileSync(
      authFile,
      JSON.stringify({
        auths: { [standin.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } },
      }),
    );
    const result = await runCli(['pull', `${standin.host}/fixtures/gzip:latest`], {
      SKIFF_STORE: store(),
      REGISTRY_AUTH_FILE: authFile,
    });
    expect(result.code, result.stderr).toBe(0);
  });

  it('without credentials, or with a wrong password: exit 2, one line, no secret in it', async () => {
    bearerRegistry();
    for (const creds of [[], ['--creds', `${USER}:wrong-${PASSWORD}`]]) {
      const result = await runCli(['pull', `${standin.host}/fixtures/gzip:latest`, ...creds], {
        SKIFF_STORE: store(),
        HOME: work.dir,
        XDG_RUNTIME_DIR: work.dir,
      });
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/refused|unauthori|credentials/i);
      noSecrets(result.stderr);
    }
  });
});

describe('Basic auth', () => {
  it('answers a Basic challenge with the credentials, and fails (exit 2) without them', async () => {
    standin.use(
      msw.all('*/v2/*', ({ request }) =>
        request.headers.get('authorization') === basic(USER, PASSWORD)
          ? passthrough()
          : new HttpResponse(null, {
              status: 401,
              headers: { 'www-authenticate': 'Basic realm="skiff-test"' },
            }),
      ),
    );
    const ok = await runCli(
      ['pull', `${standin.host}/fixtures/zstd:latest`, '--creds', `${USER}:${PASSWORD}`],
      { SKIFF_STORE: store() },
    );
    expect(ok.code, ok.stderr).toBe(0);
    const refused = await runCli(['pull', `${standin.host}/fixtures/zstd:latest`], {
      SKIFF_STORE: store(),
      HOME: work.dir,
      XDG_RUNTIME_DIR: work.dir,
    });
    expect(refused.code).toBe(2);
  });
});

/** A loopback server that records the Authorization header of every request and answers with `answer`. */
async function recordingServer(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: Array<{ path: string; authorization: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('a token realm on another host', () => {
  it("gets the credentials when the registry's own challenge names it", async () => {
    const realm = await recordingServer((req, res) => {
      const ok = req.headers.authorization === basic(USER, PASSWORD);
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? JSON.stringify({ token: TOKEN, expires_in: 300 }) : '{}');
    });
    try {
      standin.use(
        msw.all('*/v2/*', ({ request }) =>
          request.headers.get('authorization') === `Bearer ${TOKEN}`
            ? passthrough()
            : new HttpResponse(null, {
                status: 401,
                headers: {
                  'www-authenticate': `Bearer realm="http://${realm.host}/token",service="skiff-test"`,
                },
              }),
        ),
      );
      const result = await pullWithCreds();
      expect(result.code, result.stderr).toBe(0);
      expect(realm.seen.length).toBeGreaterThan(0);
      expect(realm.seen.every((s) => s.authorization === basic(USER, PASSWORD))).toBe(true);
    } finally {
      await realm.close();
    }
  });
});

describe('a challenge from a host the user never named', () => {
  // The registry (Bearer or Basic) redirects blob GETs to a second host, which answers 401 with a
  // Bearer challenge whose realm is on a third host. The registry's credentials belong to the
  // registry and its own token server: neither the second host nor the third may see them, and the
  // second's challenge must not be taken for the registry's.
  for (const scheme of ['Bearer', 'Basic'] as const) {
    it(`${scheme} registry: the redirect target's token realm never sees an Authorization header; exit 2`, async () => {
      const realm = await recordingServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: 'token-of-the-third-host', expires_in: 300 }));
      });
      const target = await recordingServer((_req, res) => {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${realm.host}/token",service="elsewhere"`,
          'content-type': 'application/json',
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      });
      try {
        if (scheme === 'Bearer') bearerRegistry(target.host);
        else basicRegistry(target.host);
        const result = await pullWithCreds();
        expect(realm.seen.filter((s) => s.authorization !== undefined)).toEqual([]);
        expect(target.seen.length).toBeGreaterThan(0);
        expect(target.seen.filter((s) => s.authorization !== undefined)).toEqual([]);
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(result.stderr).toContain(`${target.host}, where registry ${standin.host} redirected`);
        noSecrets(result.stderr);
        // The registry's own token server was asked with the credentials, as usual.
        if (scheme === 'Bearer') expect(tokenRequests.length).toBeGreaterThan(0);
      } finally {
        await realm.close();
        await target.close();
      }
    });
  }
});

describe('mirror between two registries with different credentials', () => {
  const DEST_USER = 'bob';
  const DEST_PASSWORD = 'd3st:pässword';
  let destination: RunningRegistry;
  let guard: StandIn;

  /** Basic auth for exactly one user in front of a stand-in. */
  const requireBasic = (target: StandIn, user: string, password: string) =>
    target.use(
      msw.all('*/v2/*', ({ request }) =>
        request.headers.get('authorization') === basic(user, password)
          ? passthrough()
          : new HttpResponse(null, {
              status: 401,
              headers: { 'www-authenticate': 'Basic realm="skiff-test"' },
            }),
      ),
    );

  beforeAll(async () => {
    destination = await startRegistry();
    guard = await startStandIn(destination.host);
  });
  afterAll(async () => {
    await guard?.close();
    await destination?.stop();
  });

  it('--src-creds and --dest-creds each go to their own end; one --creds cannot serve both', async () => {
    requireBasic(standin, USER, PASSWORD);
    requireBasic(guard, DEST_USER, DEST_PASSWORD);
    const src = `docker://${standin.host}/fixtures/gzip:latest`;
    const env = { HOME: work.dir, XDG_RUNTIME_DIR: work.dir };
    const ok = await runCli(
      [
        'mirror',
        '--src-creds',
        `${USER}:${PASSWORD}`,
        '--dest-creds',
        `${DEST_USER}:${DEST_PASSWORD}`,
        src,
        `docker://${guard.host}/copied/gzip:latest`,
      ],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^mirrored /);
    noSecrets(ok.stdout + ok.stderr);
    expect(ok.stdout + ok.stderr).not.toContain(DEST_PASSWORD);

    const one = await runCli(
      ['mirror', '--creds', `${USER}:${PASSWORD}`, src, `docker://${guard.host}/copied/other:latest`],
      env,
    );
    expect(one.code).toBe(2);
    expect(one.stderr.trim().split('\n')).toHaveLength(1);
    expect(one.stderr).toContain(guard.host);
  });
});
