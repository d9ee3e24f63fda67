// `skiff login` / `skiff logout` against a real docker-registry that requires Basic auth from an
// htpasswd file (bcrypt, made by libxcrypt through perl's crypt). The password must never appear in
// any output nor anywhere in the store.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, expectCleanStderr, runCli, tempDir } from '../harness/cli.js';
import { fixtureRef, type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';
import { runInTerminal } from '../harness/terminal.js';

const USER = 'alice';
const PASSWORD = 'Pw-7f3kq9-never-shown';
const WRONG = 'Wrong-2j8x-never-shown';

let registry: RunningRegistry;
let work: { dir: string; cleanup: () => void };
const outputs: CliResult[] = [];

/** A bcrypt htpasswd line, as `htpasswd -B` writes it (distribution accepts bcrypt only). */
function htpasswdLine(user: string, password: string): string {
  const salt = `$2b$05$${'skifftestsaltskifftest'.slice(0, 22)}`;
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, salt], {
    encoding: 'utf8',
  });
  if (!hash.startsWith('$2b$05$')) throw new Error(`this system's crypt(3) has no bcrypt: ${hash}`);
  return `${user}:${hash}\n`;
}

async function skiff(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  const result = await runCli(args, env, input);
  outputs.push(result);
  return result;
}

beforeAll(async () => {
  work = tempDir('skiff-login-');
  registry = await startRegistry({ htpasswd: htpasswdLine(USER, PASSWORD) });
  await skopeoCopy(fixtureRef('gzip'), `docker://${registry.host}/app:v1`, [
    '--preserve-digests',
    '--dest-creds',
    `${USER}:${PASSWORD}`,
  ]);
});
afterAll(async () => {
  await registry?.stop();
  work?.cleanup();
});

describe('login and logout against an htpasswd registry', () => {
  it('refuses a wrong password (exit 2), saves the right one 0600, pulls, logs out, and is refused again', async () => {
    const authFile = path.join(work.dir, 'run/containers/auth.json');
    const store = path.join(work.dir, 'store');
    // Login writes where pull reads: $XDG_RUNTIME_DIR/containers/auth.json, here.
    const env = {
      XDG_RUNTIME_DIR: path.join(work.dir, 'run'),
      HOME: path.join(work.dir, 'home'),
      SKIFF_STORE: store,
      REGISTRY_AUTH_FILE: '',
    };
    // Another registry's entry, which login and logout must keep.
    fs.mkdirSync(path.dirname(authFile), { recursive: true });
    fs.writeFileSync(
      authFile,
      JSON.stringify({ auths: { 'other.example': { auth: 'b3RoZXI6c2VjcmV0' } }, credHelpers: {} }),
    );

    const wrong = await skiff(['login', '-u', USER, '--password-stdin', registry.host], env, `${WRONG}\n`);
    expect(wrong.code, wrong.stderr).toBe(2);
    expect(expectCleanStderr(wrong)).toMatch(new RegExp(`registry ${registry.host} refused the credentials`));
    expect(JSON.parse(fs.readFileSync(authFile, 'utf8')).auths[registry.host]).toBeUndefined();

    const before = await skiff(['pull', `${registry.host}/app:v1`], env);
    expect(before.code, before.stderr).toBe(2);

    const right = await skiff(['login', '-u', USER, '--password-stdin', registry.host], env, `${PASSWORD}\n`);
    expect(right.code, right.stderr).toBe(0);
    expect(right.stdout).toBe('Login Succeeded!\n');
    expect(fs.statSync(authFile).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(fs.readFileSync(authFile, 'utf8'));
    expect(saved.auths[registry.host]).toEqual({
      auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
    });
    expect(saved.auths['other.example']).toEqual({ auth: 'b3RoZXI6c2VjcmV0' });
    expect(saved.credHelpers).toEqual({});
    expect(fs.readdirSync(path.dirname(authFile))).toEqual(['auth.json']);

    const pulled = await skiff(['pull', '--json', `${registry.host}/app:v1`], env);
    expect(pulled.code, pulled.stderr).toBe(0);

    const out = await skiff(['logout', registry.host], env);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe(`Removed login credentials for ${registry.host}\n`);
    const after = JSON.parse(fs.readFileSync(authFile, 'utf8'));
    expect(after.auths).toEqual({ 'other.example': { auth: 'b3RoZXI6c2VjcmV0' } });

    const refused = await skiff(
      ['pull', `${registry.host}/app:v1`, '--store', path.join(work.dir, 'store2')],
      env,
    );
    expect(refused.code, refused.stderr).toBe(2);
    expect(expectCleanStderr(refused)).toContain('requires credentials');

    const again = await skiff(['logout', registry.host], env);
    expect(again.code).toBe(1);
    expect(expectCleanStderr(again)).toContain(`not logged in to ${registry.host}`);

    const all = await skiff(['logout', '--all'], env);
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(authFile, 'utf8')).auths).toEqual({});

    for (const dir of [store, path.join(work.dir, 'store2')].filter((d) => fs.existsSync(d)))
      expectNoSecretUnder(dir);
  });

  it('--authfile and -p work too, with a warning about -p; a login with no password and no terminal is a usage error', async () => {
    const authFile = path.join(work.dir, 'flag-auth.json');
    const env = { XDG_RUNTIME_DIR: path.join(work.dir, 'unused-run'), REGISTRY_AUTH_FILE: '' };
    const viaFlag = await skiff(
      ['login', '--authfile', authFile, '-u', USER, '-p', PASSWORD, registry.host],
      env,
    );
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    expect(viaFlag.stderr).toContain('prefer --password-stdin');
    expect(fs.statSync(authFile).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(path.join(work.dir, 'unused-run'))).toBe(false);

    const noPassword = await skiff(['login', '--authfile', authFile, '-u', USER, registry.host], env);
    expect(noPassword.code).toBe(1);
    expect(expectCleanStderr(noPassword)).toContain('no terminal to ask on');

    const wrongJson = await skiff(
      ['login', '--json', '--authfile', authFile, '-u', USER, '-p', WRONG, registry.host],
      env,
    );
    expect(wrongJson.code).toBe(2);
    expect(JSON.parse(wrongJson.stdout).error.kind).toBe('unauthorized');
  });

  it('asks for the user name and the password on a terminal, the password without echo', async () => {
    const authFile = path.join(work.dir, 'tty-auth.json');
    const terminal = await runInTerminal(['login', '--authfile', authFile, registry.host]);
    try {
      await terminal.waitFor(/Username:$/);
      await terminal.type(USER, true);
      await terminal.waitFor(/Password:$/);
      await terminal.type(PASSWORD, true);
      const { code, screen } = await terminal.finished();
      expect(code, screen).toBe(0);
      expect(screen).toContain(`Username: ${USER}`);
      expect(screen).toContain('Login Succeeded!');
      expect(screen).not.toContain(PASSWORD);
      expect(JSON.parse(fs.readFileSync(authFile, 'utf8')).auths[registry.host].auth).toBe(
        Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
      );
    } finally {
      await terminal.close();
    }
  });

  it('never shows the password in any output', () => {
    expect(outputs.length).toBeGreaterThan(5);
    const encoded = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    for (const result of outputs) {
      for (const text of [result.stdout, result.stderr]) {
        expect(text).not.toContain(PASSWORD);
        expect(text).not.toContain(WRONG);
        expect(text).not.toContain(encoded);
      }
    }
  });
});

/** Every byte of every file under `dir` (the store): no password, plain or encoded. */
function expectNoSecretUnder(dir: string): void {
  const needles = [PASSWORD, WRONG, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')].map((s) =>
    Buffer.from(s),
  );
  let files = 0;
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    const bytes = fs.readFileSync(path.join(entry.parentPath, entry.name));
    for (const needle of needles)
      expect(bytes.includes(needle), path.join(entry.parentPath, entry.name)).toBe(false);
  }
  expect(files).toBeGreaterThan(0);
}
