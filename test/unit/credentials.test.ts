import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors/index.js';
import { type CredentialOptions, findCredentials } from '../../src/registry/credentials.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const basic = (username: string, password: string) => ({ kind: 'basic', username, password });

// A docker-credential helper speaking the real protocol: server URL on stdin, JSON on stdout.
// It logs each URL it is asked for, so tests can see who was asked and with what name.
const HELPER_SCRIPT = `#!/bin/sh
[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 2; }
read -r url || true
[ -n "$SKIFFTEST_LOG" ] && echo "$url" >> "$SKIFFTEST_LOG"
case "$url" in
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hub-helper-secret"}' ;;
  localhost:5000) echo '{"ServerURL":"localhost:5000","Username":"helperuser","Secret":"helper-secret:with:colons"}' ;;
  token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-token-secret"}' ;;
  broken.example) echo "keychain is locked" >&2; exit 3 ;;
  leaky.example) echo '{"Username":"u","Secret":"leaked-helper-secret"}'; exit 4 ;;
  garbage.example) echo 'not json garbage-helper-secret' ;;
  slow.example) exec sleep 20 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;

interface Sandbox {
  root: string;
  home: string;
  run: string;
  log: string;
  options: CredentialOptions & { env: NodeJS.ProcessEnv };
  /** Paths of the standard locations. */
  xdg: string;
  config: string;
  docker: string;
  write: (file: string, content: unknown) => Promise<string>;
  asked: () => Promise<string[]>;
}

let box: Sandbox;

beforeEach(async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'skiff-creds-'));
  const home = path.join(root, 'home');
  const run = path.join(root, 'run');
  const bin = path.join(root, 'bin');
  await Promise.all([mkdir(home), mkdir(run), mkdir(bin)]);
  const helper = path.join(bin, 'docker-credential-skifftest');
  await writeFile(helper, HELPER_SCRIPT);
  await chmod(helper, 0o755);
  const log = path.join(root, 'helper.log');
  // A clean environment: nothing of the machine's own credentials may leak into a test.
  const env = { PATH: `${bin}:${process.env.PATH}`, HOME: home, XDG_RUNTIME_DIR: run, SKIFFTEST_LOG: log };
  box = {
    root,
    home,
    run,
    log,
    options: { env, home },
    xdg: path.join(run, 'containers', 'auth.json'),
    config: path.join(home, '.config', 'containers', 'auth.json'),
    docker: path.join(home, '.docker', 'config.json'),
    write: async (file, content) => {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
      return file;
    },
    asked: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean),
  };
});

afterEach(async () => {
  await rm(box.root, { recursive: true, force: true });
});

const auths = (entries: Record<string, unknown>) => ({ auths: entries });
const entry = (username: string, password: string) => ({ auth: b64(`${username}:${password}`) });

describe('locations and precedence', () => {
  it('finds nothing when no file exists, even with XDG_RUNTIME_DIR pointing nowhere', async () => {
    box.options.env.XDG_RUNTIME_DIR = path.join(box.root, 'missing');
    expect(await findCredentials('quay.io', 'org/repo', box.options)).toBeUndefined();
  });

  it('explicit credentials always win', async () => {
    await box.write(box.xdg, auths({ 'quay.io': entry('fileuser', 'filepass') }));
    const found = await findCredentials('quay.io', 'org/repo', {
      ...box.options,
      explicit: { username: 'flaguser', password: 'flagpass' },
    });
    expect(found?.credential).toEqual(basic('flaguser', 'flagpass'));
    expect(found?.source).not.toContain('flagpass');
  });

  it('consults authFile, REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.config, ~/.docker in that order', async () => {
    const authFile = await box.write(
      path.join(box.root, 'flag.json'),
      auths({ 'a.example': entry('flag', 'p') }),
    );
    const envFile = await box.write(
      path.join(box.root, 'env.json'),
      auths({ 'a.example': entry('env', 'p'), 'b.example': entry('env', 'p') }),
    );
    const all = ['a', 'b', 'c', 'd', 'e'].map((h) => `${h}.example`);
    const upTo = (n: number, user: string) =>
      auths(Object.fromEntries(all.slice(0, n).map((h) => [h, entry(user, 'p')])));
    await box.write(box.xdg, upTo(3, 'xdg'));
    await box.write(box.config, upTo(4, 'config'));
    await box.write(box.docker, upTo(5, 'docker'));
    box.options.env.REGISTRY_AUTH_FILE = envFile;

    const who = async (host: string, options: CredentialOptions = box.options) => {
      const found = await findCredentials(host, 'x/y', options);
      return found?.credential.kind === 'basic' ? [found.credential.username, found.source] : undefined;
    };
    expect(await who('a.example', { ...box.options, authFile })).toEqual(['flag', authFile]);
    expect(await who('a.example')).toEqual(['env', envFile]);
    expect(await who('b.example')).toEqual(['env', envFile]);
    expect(await who('c.example')).toEqual(['xdg', box.xdg]);
    expect(await who('d.example')).toEqual(['config', box.config]);
    expect(await who('e.example')).toEqual(['docker', box.docker]);
    // --authfile replaces $REGISTRY_AUTH_FILE rather than coming before it.
    expect(await who('b.example', { ...box.options, authFile })).toEqual(['xdg', box.xdg]);
    expect(await who('f.example')).toBeUndefined();
  });

  it('reads $DOCKER_CONFIG/config.json instead of ~/.docker/config.json, and $XDG_CONFIG_HOME', async () => {
    await box.write(box.docker, auths({ 'quay.io': entry('home', 'p') }));
    const dockerConfig = path.join(box.root, 'dockercfg');
    const other = await box.write(
      path.join(dockerConfig, 'config.json'),
      auths({ 'quay.io': entry('dc', 'p') }),
    );
    box.options.env.DOCKER_CONFIG = dockerConfig;
    expect(await findCredentials('quay.io', undefined, box.options)).toEqual({
      credential: basic('dc', 'p'),
      source: other,
    });
    const xdgConfig = path.join(box.root, 'xdgconfig');
    const xdgFile = await box.write(
      path.join(xdgConfig, 'containers', 'auth.json'),
      auths({ 'quay.io': entry('xc', 'p') }),
    );
    box.options.env.XDG_CONFIG_HOME = xdgConfig;
    expect((await findCredentials('quay.io', undefined, box.options))?.source).toBe(xdgFile);
  });

  it('uses the default HOME from env when no home option is given', async () => {
    await box.write(box.docker, auths({ 'quay.io': entry('envhome', 'p') }));
    const found = await findCredentials('quay.io', undefined, { env: box.options.env });
    expect(found?.credential).toEqual(basic('envhome', 'p'));
  });
});

describe('keys', () => {
  it('prefers the most specific repository or namespace key, on path-segment boundaries', async () => {
    await box.write(
      box.config,
      auths({
        'quay.io/org': entry('namespace', 'p'),
        'quay.io': entry('registry', 'p'),
        'quay.io/org/repo': entry('repository', 'p'),
        'quay.io/other': entry('other', 'p'),
      }),
    );
    const user = async (repository: string | undefined) => {
      const found = await findCredentials('quay.io', repository, box.options);
      return found?.credential.kind === 'basic' ? found.credential.username : undefined;
    };
    expect(await user('org/repo')).toBe('repository');
    expect(await user('org/repo/sub')).toBe('repository');
    expect(await user('org/app')).toBe('namespace');
    expect(await user('orgx/app')).toBe('registry');
    expect(await user('org')).toBe('namespace');
    expect(await user('other/thing')).toBe('other');
    expect(await user('elsewhere/thing')).toBe('registry');
    expect(await user(undefined)).toBe('registry');
  });

  it('ignores a non-matching namespace key and moves on to the next file', async () => {
    await box.write(box.xdg, auths({ 'quay.io/someone-else': entry('wrong', 'p') }));
    await box.write(box.docker, auths({ 'quay.io': entry('right', 'p') }));
    const found = await findCredentials('quay.io', 'org/repo', box.options);
    expect(found).toEqual({ credential: basic('right', 'p'), source: box.docker });
  });

  it('normalises keys carrying a scheme and an API path', async () => {
    await box.write(
      box.docker,
      auths({
        'http://localhost:5000': entry('local', 'p'),
        'https://registry.example/v2/': entry('v2', 'p'),
        'HTTPS://Upper.Example': entry('upper', 'p'),
      }),
    );
    expect((await findCredentials('localhost:5000', 'a/b', box.options))?.credential).toEqual(
      basic('local', 'p'),
    );
    expect((await findCredentials('registry.example', 'a/b', box.options))?.credential).toEqual(
      basic('v2', 'p'),
    );
    expect((await findCredentials('upper.example', 'a/b', box.options))?.credential).toEqual(
      basic('upper', 'p'),
    );
    // A key for another port is another registry.
    expect(await findCredentials('localhost:5001', 'a/b', box.options)).toBeUndefined();
  });

  it.each(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'])(
    'treats %s as Docker Hub',
    async (key) => {
      await box.write(box.docker, auths({ [key]: entry('hub', 'p') }));
      for (const host of ['registry-1.docker.io', 'docker.io', 'index.docker.io']) {
        const found = await findCredentials(host, 'library/alpine', box.options);
        expect(found?.credential).toEqual(basic('hub', 'p'));
      }
      expect(await findCredentials('quay.io', 'library/alpine', box.options)).toBeUndefined();
    },
  );

  it('scopes Docker Hub keys to namespaces too', async () => {
    await box.write(
      box.config,
      auths({ 'docker.io/library': entry('lib', 'p'), 'docker.io': entry('all', 'p') }),
    );
    const lib = await findCredentials('registry-1.docker.io', 'library/alpine', box.options);
    const mine = await findCredentials('registry-1.docker.io', 'me/app', box.options);
    expect(lib?.credential).toEqual(basic('lib', 'p'));
    expect(mine?.credential).toEqual(basic('all', 'p'));
  });
});

describe('entries', () => {
  it('splits auth at the first colon only', async () => {
    await box.write(box.config, auths({ 'quay.io': entry('user', 'pa:ss:word:') }));
    expect((await findCredentials('quay.io', 'a/b', box.options))?.credential).toEqual(
      basic('user', 'pa:ss:word:'),
    );
  });

  it('accepts username and password fields instead of auth', async () => {
    await box.write(box.config, auths({ 'quay.io': { username: 'u', password: 'p:w' } }));
    expect((await findCredentials('quay.io', 'a/b', box.options))?.credential).toEqual(basic('u', 'p:w'));
  });

  it('returns an identity token with the username from auth', async () => {
    await box.write(
      box.docker,
      auths({ 'myacr.example': { auth: b64('00000000-0000:'), identitytoken: 'refresh-tok' } }),
    );
    expect((await findCredentials('myacr.example', 'a/b', box.options))?.credential).toEqual({
      kind: 'identity-token',
      token: 'refresh-tok',
      username: '00000000-0000',
    });
  });

  it('ignores entries with no credentials (docker credsStore placeholders)', async () => {
    await box.write(box.xdg, auths({ 'quay.io': {}, 'quay.io/org': { auth: '' } }));
    await box.write(box.docker, auths({ 'quay.io': entry('later', 'p') }));
    expect((await findCredentials('quay.io', 'org/repo', box.options))?.source).toBe(box.docker);
  });

  it('accepts an empty file and unrelated docker settings', async () => {
    await box.write(box.xdg, '');
    await box.write(box.config, {
      psFormat: 'table',
      plugins: { x: {} },
      auths: { 'quay.io': entry('u', 'p') },
    });
    expect((await findCredentials('quay.io', 'a/b', box.options))?.source).toBe(box.config);
  });
});

describe('credential helpers (a real helper process)', () => {
  it('runs credHelpers[host] with the host on stdin', async () => {
    await box.write(box.docker, { credHelpers: { 'localhost:5000': 'skifftest' } });
    const found = await findCredentials('localhost:5000', 'a/b', box.options);
    expect(found).toEqual({
      credential: basic('helperuser', 'helper-secret:with:colons'),
      source: 'docker-credential-skifftest',
    });
    expect(await box.asked()).toEqual(['localhost:5000']);
  });

  it('asks the helper for Docker Hub as https://index.docker.io/v1/, whatever alias names it', async () => {
    await box.write(box.docker, { credHelpers: { 'docker.io': 'skifftest' } });
    const found = await findCredentials('registry-1.docker.io', 'library/alpine', box.options);
    expect(found?.credential).toEqual(basic('hubuser', 'hub-helper-secret'));
    expect(await box.asked()).toEqual(['https://index.docker.io/v1/']);
  });

  it('turns Username "<token>" into an identity token', async () => {
    await box.write(box.docker, { credsStore: 'skifftest' });
    const found = await findCredentials('token.example', 'a/b', box.options);
    expect(found?.credential).toEqual({ kind: 'identity-token', token: 'refresh-token-secret' });
  });

  it('prefers credHelpers to auths entries and skips credsStore for that host', async () => {
    await box.write(box.docker, {
      credHelpers: { 'localhost:5000': 'skifftest' },
      credsStore: 'not-installed',
      auths: { 'localhost:5000': entry('file', 'p') },
    });
    expect((await findCredentials('localhost:5000', 'a/b', box.options))?.source).toBe(
      'docker-credential-skifftest',
    );
  });

  it('falls back to auths entries, then the next file, when the helper has nothing', async () => {
    await box.write(box.xdg, {
      credHelpers: { 'nothing.example': 'skifftest', 'other.example': 'skifftest' },
      auths: { 'nothing.example': entry('file', 'p') },
    });
    await box.write(box.docker, auths({ 'other.example': entry('docker', 'p') }));
    expect((await findCredentials('nothing.example', 'a/b', box.options))?.source).toBe(box.xdg);
    expect((await findCredentials('other.example', 'a/b', box.options))?.source).toBe(box.docker);
    expect(await box.asked()).toEqual(['nothing.example', 'other.example']);
  });

  it('does not fall back to credsStore when credHelpers names the host', async () => {
    await box.write(box.docker, {
      credHelpers: { 'unknown.example': 'skifftest' },
      credsStore: 'not-installed',
    });
    expect(await findCredentials('unknown.example', 'a/b', box.options)).toBeUndefined();
    expect(await box.asked()).toEqual(['unknown.example']);
  });

  it('uses credsStore after auths entries, and "credentials not found" is no error', async () => {
    await box.write(box.docker, {
      credsStore: 'skifftest',
      auths: { 'localhost:5000': {}, 'quay.io': entry('file', 'p') },
    });
    expect((await findCredentials('localhost:5000', 'a/b', box.options))?.credential).toEqual(
      basic('helperuser', 'helper-secret:with:colons'),
    );
    expect((await findCredentials('quay.io', 'a/b', box.options))?.source).toBe(box.docker);
    expect(await findCredentials('unknown.example', 'a/b', box.options)).toBeUndefined();
    expect(await box.asked()).toEqual(['localhost:5000', 'unknown.example']);
  });

  it('passes the helper name and server URL to an injected runner', async () => {
    await box.write(box.docker, { credsStore: 'desktop' });
    const calls: string[][] = [];
    const found = await findCredentials('index.docker.io', 'library/alpine', {
      ...box.options,
      runHelper: async (helper, serverURL) => {
        calls.push([helper, serverURL]);
        return { Username: 'u', Secret: 's' };
      },
    });
    expect(calls).toEqual([['desktop', 'https://index.docker.io/v1/']]);
    expect(found).toEqual({ credential: basic('u', 's'), source: 'docker-credential-desktop' });
  });

  const failures: [string, string, RegExp][] = [
    [
      'broken.example',
      'skifftest',
      /docker-credential-skifftest failed for broken\.example \(exit status 3\): keychain is locked/,
    ],
    ['leaky.example', 'skifftest', /docker-credential-skifftest failed for leaky\.example \(exit status 4\)/],
    ['garbage.example', 'skifftest', /docker-credential-skifftest printed something other than JSON/],
    ['quay.io', 'not-installed', /docker-credential-not-installed is not installed/],
  ];
  it.each(failures)(
    'reports a failing helper for %s (%s) without its secret',
    async (host, helper, pattern) => {
      await box.write(box.docker, { credHelpers: { [host]: helper } });
      const error = await findCredentials(host, 'a/b', box.options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      const message = (error as Error).message;
      expect(message).toMatch(pattern);
      expect(message).toContain(box.docker);
      expect(message).not.toMatch(/secret/i);
    },
  );

  it('time-limits the helper', async () => {
    await box.write(box.docker, { credHelpers: { 'slow.example': 'skifftest' } });
    const started = Date.now();
    const error = await findCredentials('slow.example', 'a/b', {
      ...box.options,
      helperTimeoutMs: 300,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/docker-credential-skifftest did not answer within 0\.3 s/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('malformed files', () => {
  const SECRET = 'hunter2-very-secret';
  const cases: [string, string][] = [
    ['bad JSON', `{"auths": {"quay.io": {"password": "${SECRET}" "x"}}}`],
    // V8 quotes the text around an unexpected token: the message must not pass that on.
    ['unquoted value', `{"auths": {"quay.io": {"password": ${SECRET}}}}`],
    ['truncated JSON', `{"auths": {"quay.io": {"password": "${SECRET}`],
    ['bad base64', JSON.stringify(auths({ 'quay.io': { auth: `${SECRET}!!` } }))],
    ['base64 without a colon', JSON.stringify(auths({ 'quay.io': { auth: b64(SECRET) } }))],
    ['auths is a list', JSON.stringify({ auths: [SECRET] })],
    ['auth is a number', JSON.stringify(auths({ 'quay.io': { auth: 12345, password: SECRET } }))],
    ['top level is not an object', JSON.stringify([SECRET])],
    ['helper name with a path', JSON.stringify({ credHelpers: { 'quay.io': `../../${SECRET}` } })],
    ['credsStore is not a string', JSON.stringify({ credsStore: { name: SECRET } })],
  ];
  it.each(cases)('%s: one-line UsageError naming the file, not the secret', async (_name, content) => {
    const file = await box.write(path.join(box.root, 'bad auth.json'), content);
    const error = await findCredentials('quay.io', 'a/b', { ...box.options, authFile: file }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UsageError);
    const { message } = error as UsageError;
    expect(message).toContain(file);
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain(b64(SECRET).slice(0, 12));
    expect(message).not.toContain('\n');
    expect((error as UsageError).cause).toBeUndefined();
  });

  it('names the offending field', async () => {
    const file = await box.write(box.config, auths({ 'quay.io': { auth: 'a$bc' } }));
    await expect(findCredentials('quay.io', 'a/b', box.options)).rejects.toThrow(
      `credentials file ${file} is malformed: auths["quay.io"].auth is not valid base64`,
    );
  });

  it('only reads as far as the first file with an entry', async () => {
    await box.write(box.xdg, auths({ 'quay.io': entry('u', 'p') }));
    await box.write(box.docker, '{ not json');
    expect((await findCredentials('quay.io', 'a/b', box.options))?.source).toBe(box.xdg);
    await expect(findCredentials('other.example', 'a/b', box.options)).rejects.toThrow(/is not valid JSON/);
  });
});
