// Proxies and private CAs as they are met in companies (docs/network.md "Proxies",
// "Certificates"): Debian's squid between skiff and Debian's docker-registry serving TLS with a CA
// openssl makes here. squid's own hosts file names the registries `registry.skiff.test` and
// `alias.skiff.test` (127.0.0.1), so skiff reaches them only through the proxy, as a remote
// registry; its access log shows each CONNECT. skopeo 1.18 reads the same certificate
// directories as the yardstick.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pushChunkedPair } from '../harness/chunked-pair.js';
import { expectCleanStderr, runCli, tempDir } from '../harness/cli.js';
import { TestCa } from '../harness/pki.js';
import {
  fixtureRef,
  freePort,
  type RunningRegistry,
  skopeoCopy,
  startRegistry,
} from '../harness/registry.js';
import { type Squid, startSquid } from '../harness/squid.js';

const execFileAsync = promisify(execFile);
const SKOPEO_MODERN = '/opt/skopeo-modern/skopeo';
const shared = inject('registry');
const NAME = 'registry.skiff.test';
const ALIAS = 'alias.skiff.test';
/** One plain-HTTP server playing a registry front (FRONT), its token server and its blob storage. */
const FRONT = 'front.skiff.test';
const TOKEN_HOST = 'token.skiff.test';
const STORAGE = 'storage.skiff.test';
/** An HTTPS lookaside store of simple signatures (registries.d `lookaside`). */
const LOOKASIDE = 'lookaside.skiff.test';
const IMAGE = 'fixtures/gzip:latest';

let work: { dir: string; cleanup: () => void };
let ca: TestCa;
let tlsRegistry: RunningRegistry;
let mtlsRegistry: RunningRegistry;
let expiredRegistry: RunningRegistry;
let proxy: Squid;
let front: { port: number; storageAuthorizations: Array<string | undefined>; close(): Promise<void> };
let port: string;
let mtlsPort: string;
/** --cert-dir directories: the CA; the CA and a client certificate; a stranger's client certificate. */
let caDir: string;
let clientDir: string;
let strangerDir: string;
let n = 0;
const fresh = (what: string) => path.join(work.dir, `${what}-${n++}`);

/** A home directory whose containers certs.d trusts the CA for `hostPort`. */
function homeTrusting(hostPort: string): string {
  const home = fresh('home');
  const dir = path.join(home, '.config/containers/certs.d', hostPort);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(ca.cert, path.join(dir, 'ca.crt'));
  return home;
}

function certDir(files: Record<string, string>): string {
  const dir = fresh('certs');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, from] of Object.entries(files)) fs.copyFileSync(from, path.join(dir, name));
  return dir;
}

/** Without retries unless asked for: a failure is reported at once. */
const pull = (reference: string, args: string[], env: Record<string, string>) =>
  runCli(['pull', reference, ...(args.includes('--retry-times') ? [] : ['--retry-times', '0']), ...args], {
    SKIFF_STORE: fresh('store'),
    HOME: fresh('home'),
    ...env,
  });

const newConnects = async (before: string[]) => (await proxy.connects()).slice(before.length);

beforeAll(async () => {
  work = tempDir('skiff-tls-');
  ca = new TestCa(path.join(work.dir, 'pki'));
  const server = ca.server('server', [NAME, 'IP:127.0.0.1']);
  const client = ca.client('client');
  const expired = ca.expiredServer('expired', [NAME]);
  const stranger = new TestCa(path.join(work.dir, 'stranger'), 'stranger').client('stranger-client');
  caDir = certDir({ 'ca.crt': ca.cert });
  clientDir = certDir({ 'ca.crt': ca.cert, 'client.cert': client.cert, 'client.key': client.key });
  strangerDir = certDir({ 'ca.crt': ca.cert, 'client.cert': stranger.cert, 'client.key': stranger.key });
  [tlsRegistry, mtlsRegistry, expiredRegistry, proxy] = await Promise.all([
    startRegistry({ tls: { certificate: server.cert, key: server.key } }),
    startRegistry({ tls: { certificate: server.cert, key: server.key, clientCAs: [ca.cert] } }),
    startRegistry({ tls: { certificate: expired.cert, key: expired.key } }),
    startSquid({
      hosts: Object.fromEntries(
        [NAME, ALIAS, FRONT, TOKEN_HOST, STORAGE, LOOKASIDE].map((h) => [h, '127.0.0.1']),
      ),
    }),
  ]);
  front = await startFront();
  port = tlsRegistry.host.split(':')[1]!;
  mtlsPort = mtlsRegistry.host.split(':')[1]!;
  await Promise.all([
    skopeoCopy(fixtureRef('gzip'), `docker://${tlsRegistry.host}/${IMAGE}`, ['--preserve-digests']),
    skopeoCopy(fixtureRef('gzip'), `docker://${mtlsRegistry.host}/${IMAGE}`, [
      '--preserve-digests',
      '--dest-cert-dir',
      clientDir,
    ]),
    pushChunkedPair(tlsRegistry.host, 'chunked', work.dir),
  ]);
});
afterAll(async () => {
  await Promise.all([
    tlsRegistry?.stop(),
    mtlsRegistry?.stop(),
    expiredRegistry?.stop(),
    proxy?.stop(),
    front?.close(),
  ]);
  work?.cleanup();
});

/**
 * By the Host a request names: FRONT answers 401 with a Bearer challenge whose realm is on
 * TOKEN_HOST, redirects blob GETs to STORAGE, and passes the rest to the shared registry.
 */
async function startFront(): Promise<typeof front> {
  const storageAuthorizations: Array<string | undefined> = [];
  const server = http.createServer(async (req, res) => {
    const name = (req.headers.host ?? '').split(':')[0];
    const where = req.url ?? '/';
    if (name === TOKEN_HOST) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t0k3n"}');
      return;
    }
    if (name === FRONT && req.headers.authorization !== 'Bearer t0k3n') {
      const realm = `http://${TOKEN_HOST}:${front.port}/token`;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="front"` }).end();
      return;
    }
    if (name === FRONT && where.startsWith('/v2/forbidden/')) {
      const denied = '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}';
      res
        .writeHead(403, {
          'content-type': 'application/json',
          'docker-distribution-api-version': 'registry/2.0',
        })
        .end(denied);
      return;
    }
    if (name === FRONT && where.includes('/blobs/')) {
      res.writeHead(307, { location: `http://${STORAGE}:${front.port}${where}` }).end();
      return;
    }
    if (name === STORAGE) storageAuthorizations.push(req.headers.authorization);
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'range']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
    const upstream = await fetch(`http://${shared}${where}`, { method: req.method ?? 'GET', headers });
    const answer: Record<string, string> = {};
    for (const h of ['content-type', 'content-range', 'docker-content-digest']) {
      const value = upstream.headers.get(h);
      if (value) answer[h] = value;
    }
    res.writeHead(upstream.status, answer).end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    storageAuthorizations,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('HTTPS_PROXY', () => {
  it('a pull goes through the proxy: each connection is a CONNECT it logged; certs.d under $HOME trusts the CA', async () => {
    const before = await proxy.connects();
    const result = await pull(`${NAME}:${port}/${IMAGE}`, [], {
      HTTPS_PROXY: proxy.url,
      HOME: homeTrusting(`${NAME}:${port}`),
    });
    expect(result.code, result.stderr).toBe(0);
    const connects = await newConnects(before);
    expect(connects.length).toBeGreaterThan(0);
    expect(new Set(connects)).toEqual(new Set([`${NAME}:${port}`]));
  });

  it('a partial pull through the proxy: the ranges of v2 travel its tunnels', async () => {
    const env = { HTTPS_PROXY: proxy.url, SKIFF_STORE: fresh('store'), HOME: fresh('home') };
    const v1 = await runCli(['pull', `${NAME}:${port}/chunked:v1`, '--cert-dir', caDir], env);
    expect(v1.code, v1.stderr).toBe(0);
    const before = await proxy.connects();
    const v2 = await runCli(['pull', `${NAME}:${port}/chunked:v2`, '--cert-dir', caDir, '--json'], env);
    expect(v2.code, v2.stderr).toBe(0);
    expect(JSON.parse(v2.stdout).layers[0]).toMatchObject({ method: 'partial' });
    expect(await newConnects(before)).toContain(`${NAME}:${port}`);
  });

  it('HTTP_PROXY carries plain-HTTP registries: the token request and the blob redirect to another host too', async () => {
    const before = (await proxy.requests()).length;
    const result = await pull(`${FRONT}:${front.port}/${IMAGE}`, ['--tls-verify=false'], {
      HTTP_PROXY: proxy.url,
    });
    expect(result.code, result.stderr).toBe(0);
    const seen = (await proxy.requests()).slice(before).map((r) => `${r.method} ${new URL(r.url).host}`);
    for (const host of [FRONT, TOKEN_HOST, STORAGE]) expect(seen).toContain(`GET ${host}:${front.port}`);
    expect(front.storageAuthorizations.length).toBeGreaterThan(0);
    expect(front.storageAuthorizations.every((a) => a === undefined)).toBe(true);
  });

  it('the lower-case https_proxy works the same', async () => {
    const before = await proxy.connects();
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], { https_proxy: proxy.url });
    expect(result.code, result.stderr).toBe(0);
    expect(await newConnects(before)).toContain(`${NAME}:${port}`);
  });

  it('NO_PROXY naming the registry bypasses the proxy: skiff connects directly (and cannot resolve the name)', async () => {
    const before = await proxy.connects();
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
      HTTPS_PROXY: proxy.url,
      NO_PROXY: 'example.com, .skiff.test',
    });
    expect(result.code).toBe(5);
    expect(expectCleanStderr(result)).toMatch(/ENOTFOUND.*registry\.skiff\.test/);
    expect(await newConnects(before)).toEqual([]);
  });

  it('a NO_PROXY entry for another port does not bypass it', async () => {
    const before = await proxy.connects();
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
      HTTPS_PROXY: proxy.url,
      no_proxy: `${NAME}:1`,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(await newConnects(before)).toContain(`${NAME}:${port}`);
  });

  it('loopback registries are never proxied, as in Go', async () => {
    const result = await pull(`${shared}/${IMAGE}`, [], {
      HTTP_PROXY: `http://127.0.0.1:${await freePort()}`,
      HTTPS_PROXY: `http://127.0.0.1:${await freePort()}`,
    });
    expect(result.code, result.stderr).toBe(0);
  });

  it('a proxy that refuses connections: exit 5, one line naming it without its password', async () => {
    const closed = await freePort();
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
      HTTPS_PROXY: `http://alice:pr0xy-s3cret@127.0.0.1:${closed}`,
    });
    expect(result.code).toBe(5);
    const line = expectCleanStderr(result);
    expect(line).toContain(`cannot reach proxy http://alice:***@127.0.0.1:${closed} (for ${NAME}:${port})`);
    expect(line).toContain('ECONNREFUSED');
    expect(result.stderr + result.stdout).not.toContain('pr0xy-s3cret');
  });

  it('a proxy that opens the tunnel and drops it: exit 5 after the retries, naming the proxy', async () => {
    const dropper = net.createServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
        socket.resetAndDestroy();
      });
    });
    await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(dropper.address() as net.AddressInfo).port}`;
    try {
      const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir, '--retry-times', '1'], {
        HTTPS_PROXY: proxyUrl,
      });
      expect(result.code).toBe(5);
      expect(expectCleanStderr(result)).toContain(
        `the connection to ${NAME}:${port} through proxy ${proxyUrl} failed: ECONNRESET`,
      );
    } finally {
      await new Promise((resolve) => dropper.close(resolve));
    }
  });

  it('a proxy that refuses the tunnel (403): exit 5 at once, naming the proxy', async () => {
    const denying = await startSquid({ hosts: { [NAME]: '127.0.0.1' }, denyAll: true });
    try {
      const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir, '--retry-times', '3'], {
        HTTPS_PROXY: denying.url,
      });
      expect(result.code).toBe(5);
      expect(expectCleanStderr(result)).toBe(
        `skiff: ${NAME}:${port}/${IMAGE}: proxy ${denying.url} refused the tunnel to ${NAME}:${port} (HTTP 403)`,
      );
      expect(result.stderr).not.toContain('retrying');
    } finally {
      await denying.stop();
    }
  });

  it('a proxy that wants credentials: 407 is exit 5 saying so; credentials in the URL work', async () => {
    const user = { name: 'proxyuser', password: 'pr0xy-s3cret' };
    const guarded = await startSquid({ hosts: { [NAME]: '127.0.0.1' }, user });
    try {
      const refused = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
        HTTPS_PROXY: guarded.url,
      });
      expect(refused.code).toBe(5);
      expect(expectCleanStderr(refused)).toContain(
        `proxy ${guarded.url} refused the tunnel to ${NAME}:${port} (HTTP 407): it asks for credentials`,
      );
      const withUser = new URL(guarded.url);
      withUser.username = user.name;
      withUser.password = 'wrong';
      const wrong = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
        HTTPS_PROXY: withUser.href,
      });
      expect(wrong.code).toBe(5);
      expect(expectCleanStderr(wrong)).toContain(`proxy http://${user.name}:***@127.0.0.1:${guarded.port}`);
      expect(wrong.stderr).not.toContain('wrong');
      withUser.password = user.password;
      const before = await guarded.connects();
      const accepted = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', caDir], {
        HTTPS_PROXY: withUser.href,
      });
      expect(accepted.code, accepted.stderr).toBe(0);
      expect((await guarded.connects()).slice(before.length)).toContain(`${NAME}:${port}`);
    } finally {
      await guarded.stop();
    }
  });
});

describe('HTTP_PROXY refusing a plain-HTTP registry', () => {
  const frontHosts = () => Object.fromEntries([FRONT, TOKEN_HOST, STORAGE].map((h) => [h, '127.0.0.1']));
  // Plain HTTP goes to the proxy in absolute form: its refusal is an ordinary answer, which must not
  // be taken for the registry's own 403 (exit 2, "unauthorized").
  it('403 from squid: exit 5 at once, naming the proxy and what it said', async () => {
    const denying = await startSquid({ hosts: frontHosts(), denyAll: true });
    try {
      const result = await pull(
        `${FRONT}:${front.port}/${IMAGE}`,
        ['--tls-verify=false', '--retry-times', '2'],
        {
          HTTP_PROXY: denying.url,
        },
      );
      expect(result.code, result.stderr).toBe(5);
      expect(expectCleanStderr(result)).toBe(
        `skiff: ${FRONT}:${front.port}/${IMAGE}: proxy ${denying.url} refused the request to ${FRONT}:${front.port} (HTTP 403, ERR_ACCESS_DENIED)`,
      );
      expect(result.stderr).not.toContain('retrying');
    } finally {
      await denying.stop();
    }
  });

  // undici itself fails a plain-HTTP request the proxy answers 407 (Http1ProxyWrapper).
  it('407 from squid: exit 5 saying it wants credentials; with them in the URL the pull goes through', async () => {
    const user = { name: 'proxyuser', password: 'pr0xy-s3cret' };
    const guarded = await startSquid({ hosts: frontHosts(), user });
    try {
      const refused = await pull(`${FRONT}:${front.port}/${IMAGE}`, ['--tls-verify=false'], {
        HTTP_PROXY: guarded.url,
      });
      expect(refused.code, refused.stderr).toBe(5);
      expect(expectCleanStderr(refused)).toContain(
        `proxy ${guarded.url} refused the request to ${FRONT}:${front.port} (HTTP 407): it asks for credentials; give them in $HTTP_PROXY`,
      );
      const withUser = new URL(guarded.url);
      withUser.username = user.name;
      withUser.password = user.password;
      const accepted = await pull(`${FRONT}:${front.port}/${IMAGE}`, ['--tls-verify=false'], {
        HTTP_PROXY: withUser.href,
      });
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(accepted.stderr + accepted.stdout).not.toContain(user.password);
    } finally {
      await guarded.stop();
    }
  });

  it("the registry's own 403 through the proxy stays the registry's: exit 2", async () => {
    const before = (await proxy.requests()).length;
    const result = await pull(`${FRONT}:${front.port}/forbidden/app:1`, ['--tls-verify=false'], {
      HTTP_PROXY: proxy.url,
    });
    expect(result.code, result.stderr).toBe(2);
    expect(expectCleanStderr(result)).not.toContain('proxy');
    expect((await proxy.requests()).length).toBeGreaterThan(before);
  });
});

describe('certificates', () => {
  it('a registry whose CA skiff does not know: exit 5 at once, naming the host, the check and where skiff looked', async () => {
    const home = fresh('home');
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--retry-times', '3', '--json'], {
      HTTPS_PROXY: proxy.url,
      HOME: home,
    });
    expect(result.code).toBe(5);
    const line = expectCleanStderr(result);
    expect(line).toContain(
      `the TLS certificate of ${NAME}:${port} failed verification: it is signed by an unknown certificate authority`,
    );
    expect(line).toContain(path.join(home, '.config/containers/certs.d', `${NAME}:${port}`));
    expect(line).toContain(`/etc/containers/certs.d/${NAME}:${port}`);
    expect(line).toContain(`/etc/docker/certs.d/${NAME}:${port}`);
    expect(result.stderr).not.toContain('retrying');
    expect(JSON.parse(result.stdout).error).toMatchObject({ kind: 'certificate', exitCode: 5 });
  });

  it('--tls-verify=false still pulls from it', async () => {
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--tls-verify=false'], { HTTPS_PROXY: proxy.url });
    expect(result.code, result.stderr).toBe(0);
  });

  it('a certificate for other names: exit 5 saying the name does not match', async () => {
    const result = await pull(`${ALIAS}:${port}/${IMAGE}`, ['--cert-dir', caDir], { HTTPS_PROXY: proxy.url });
    expect(result.code).toBe(5);
    expect(expectCleanStderr(result)).toContain(
      `the TLS certificate of ${ALIAS}:${port} failed verification: it is not issued for this host name`,
    );
  });

  it('an expired certificate: exit 5 saying so', async () => {
    const expiredPort = expiredRegistry.host.split(':')[1]!;
    const result = await pull(`${NAME}:${expiredPort}/${IMAGE}`, ['--cert-dir', caDir], {
      HTTPS_PROXY: proxy.url,
    });
    expect(result.code).toBe(5);
    expect(expectCleanStderr(result)).toContain(
      `the TLS certificate of ${NAME}:${expiredPort} failed verification: it has expired (CERT_HAS_EXPIRED)`,
    );
  });

  it('a registry that requires a client certificate: refused without one, pulled with --cert-dir, refused with a stranger', async () => {
    const reference = `${NAME}:${mtlsPort}/${IMAGE}`;
    const without = await pull(reference, ['--cert-dir', caDir], { HTTPS_PROXY: proxy.url });
    expect(without.code).toBe(5);
    expect(expectCleanStderr(without)).toContain(
      `${NAME}:${mtlsPort} requires a TLS client certificate and skiff has none for it`,
    );
    const withCert = await pull(reference, ['--cert-dir', clientDir], { HTTPS_PROXY: proxy.url });
    expect(withCert.code, withCert.stderr).toBe(0);
    const stranger = await pull(reference, ['--cert-dir', strangerDir], { HTTPS_PROXY: proxy.url });
    expect(stranger.code).toBe(5);
    expect(expectCleanStderr(stranger)).toContain(
      `${NAME}:${mtlsPort} rejected the TLS client certificate ${path.join(strangerDir, 'client.cert')}`,
    );
  });

  it('a client certificate without its key is an error naming the file', async () => {
    const dir = certDir({ 'ca.crt': ca.cert, 'client.cert': ca.cert });
    const result = await pull(`${NAME}:${port}/${IMAGE}`, ['--cert-dir', dir], { HTTPS_PROXY: proxy.url });
    expect(result.code).toBe(1);
    expect(expectCleanStderr(result)).toContain(
      `client certificate ${path.join(dir, 'client.cert')} has no key ${path.join(dir, 'client.key')}`,
    );
  });

  it('mirror: --src-cert-dir and --dest-cert-dir, each registry with its own', async () => {
    const result = await runCli(
      [
        'mirror',
        `docker://${NAME}:${port}/${IMAGE}`,
        `docker://${NAME}:${mtlsPort}/mirrored/gzip:latest`,
        '--src-cert-dir',
        caDir,
        '--dest-cert-dir',
        clientDir,
      ],
      { HOME: fresh('home'), HTTPS_PROXY: proxy.url },
    );
    expect(result.code, result.stderr).toBe(0);
  });

  it('skopeo 1.18 reads the same directories: --cert-dir and certs.d under $HOME', async () => {
    const env = { ...process.env, HTTPS_PROXY: proxy.url, HOME: fresh('home') };
    const inspect = (reference: string, args: string[], home = env.HOME) =>
      execFileAsync(SKOPEO_MODERN, ['inspect', '--raw', ...args, `docker://${reference}`], {
        env: { ...env, HOME: home },
      });
    await inspect(`${NAME}:${mtlsPort}/${IMAGE}`, ['--cert-dir', clientDir]);
    await inspect(`${NAME}:${port}/${IMAGE}`, [], homeTrusting(`${NAME}:${port}`));
    await expect(inspect(`${NAME}:${port}/${IMAGE}`, [])).rejects.toThrow(/certificate/);
  });
});

describe('lookaside signatures over HTTPS', () => {
  // registries.d's `lookaside` is read as containers/image reads it: with the registry's HTTP
  // client, so through HTTPS_PROXY and trusting the registry's certs.d or --cert-dir CAs. Here the
  // store is named only in squid's hosts file, and its certificate is the suite CA's.
  let policy: string;
  let registriesD: string;
  let served: string[];
  const servers: https.Server[] = [];

  /** An HTTPS lookaside holding one GPG simple signature of the image, under `issuer`'s certificate. */
  async function lookasideServer(issued: { cert: string; key: string }, signature: Buffer, dir: string) {
    const server = https.createServer(
      { cert: fs.readFileSync(issued.cert), key: fs.readFileSync(issued.key) },
      (req, res) => {
        served.push(req.url ?? '');
        if (req.url === `/${dir}/signature-1`) res.writeHead(200).end(signature);
        else res.writeHead(404).end();
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  let signature: Buffer;
  let signatureDir: string;
  beforeAll(async () => {
    served = [];
    const gnupg = fresh('gnupg');
    fs.mkdirSync(gnupg, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: gnupg };
    const uid = 'skiff lookaside <lookaside@skiff.invalid>';
    await execFileAsync(
      'gpg',
      ['--batch', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'],
      {
        env,
      },
    );
    const { stdout } = await execFileAsync('gpg', ['--list-keys', '--with-colons', uid], { env });
    const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)![1]!;
    const publicKey = fresh('key.gpg');
    await execFileAsync('gpg', ['--batch', '--yes', '--output', publicKey, '--export', fingerprint], { env });
    const manifest = fresh('manifest.json');
    const raw = await execFileAsync(
      SKOPEO_MODERN,
      ['inspect', '--raw', '--cert-dir', caDir, `docker://${tlsRegistry.host}/${IMAGE}`],
      {
        encoding: 'buffer',
      },
    );
    fs.writeFileSync(manifest, raw.stdout);
    const digest = createHash('sha256').update(raw.stdout).digest('hex');
    const signed = fresh('signature');
    await execFileAsync(
      SKOPEO_MODERN,
      ['standalone-sign', '--output', signed, manifest, `${NAME}:${port}/${IMAGE}`, fingerprint],
      { env },
    );
    signature = fs.readFileSync(signed);
    signatureDir = `${IMAGE.split(':')[0]}@sha256=${digest}`;
    policy = fresh('policy.json');
    fs.writeFileSync(
      policy,
      JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: publicKey }] }),
    );
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  function lookasideAt(lookasidePort: number): string {
    registriesD = fresh('registries.d');
    fs.mkdirSync(registriesD);
    fs.writeFileSync(
      path.join(registriesD, 'default.yaml'),
      `default-docker:\n  lookaside: https://${LOOKASIDE}:${lookasidePort}/\n`,
    );
    return registriesD;
  }
  const signedPull = (dir: string, args: string[]) =>
    pull(`${NAME}:${port}/${IMAGE}`, ['--policy', policy, '--registries.d', dir, ...args], {
      HTTPS_PROXY: proxy.url,
    });

  it("through the proxy, trusted by --cert-dir or by the registry's certs.d: the signature is read and accepted", async () => {
    const lookasidePort = await lookasideServer(ca.server('lookaside', [LOOKASIDE]), signature, signatureDir);
    const dir = lookasideAt(lookasidePort);
    const before = await proxy.connects();
    const result = await signedPull(dir, ['--cert-dir', caDir]);
    expect(result.code, result.stderr).toBe(0);
    expect(served).toContain(`/${signatureDir}/signature-1`);
    expect(await newConnects(before)).toContain(`${LOOKASIDE}:${lookasidePort}`);
    const viaHome = await pull(`${NAME}:${port}/${IMAGE}`, ['--policy', policy, '--registries.d', dir], {
      HTTPS_PROXY: proxy.url,
      HOME: homeTrusting(`${NAME}:${port}`),
    });
    expect(viaHome.code, viaHome.stderr).toBe(0);
  });

  it('a lookaside whose certificate no trusted CA signed: exit 5 naming it, not a missing signature', async () => {
    const stranger = new TestCa(fresh('stranger-ca'), 'stranger').server('lookaside', [LOOKASIDE]);
    const lookasidePort = await lookasideServer(stranger, signature, signatureDir);
    const result = await signedPull(lookasideAt(lookasidePort), ['--cert-dir', caDir]);
    expect(result.code, result.stderr).toBe(5);
    expect(expectCleanStderr(result)).toContain(
      `the TLS certificate of ${LOOKASIDE}:${lookasidePort} (for registry ${NAME}:${port}) failed verification`,
    );
  });
});
