// Where skiff login writes and how it rewrites the containers auth file: the place credentials.ts
// reads first, other entries and keys kept, 0600, and a damaged file refused without quoting it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors/index.js';
import {
  authFileForWriting,
  authKey,
  removeAllLogins,
  removeLogin,
  saveLogin,
} from '../../src/registry/auth-file.js';
import { findCredentials } from '../../src/registry/credentials.js';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-authfile-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('where login writes', () => {
  it('--authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json', async () => {
    const env = { REGISTRY_AUTH_FILE: path.join(root, 'env.json'), XDG_RUNTIME_DIR: path.join(root, 'run') };
    expect(await authFileForWriting({ authFile: path.join(root, 'flag.json'), env })).toBe(
      path.join(root, 'flag.json'),
    );
    expect(await authFileForWriting({ env })).toBe(path.join(root, 'env.json'));
    expect(await authFileForWriting({ env: { XDG_RUNTIME_DIR: env.XDG_RUNTIME_DIR } })).toBe(
      path.join(root, 'run/containers/auth.json'),
    );
  });

  it('what login saves is what the credential lookup finds', async () => {
    const env = { XDG_RUNTIME_DIR: path.join(root, 'run'), HOME: path.join(root, 'home') };
    const file = await authFileForWriting({ env });
    await saveLogin(file, 'registry.example:5000', 'alice', 'pa:ss');
    expect(await findCredentials('registry.example:5000', 'app', { env, home: env.HOME })).toEqual({
      credential: { kind: 'basic', username: 'alice', password: 'pa:ss' },
      source: file,
    });
  });
});

describe('rewriting the file', () => {
  it('keeps every other entry and key, and writes 0600', async () => {
    const file = path.join(root, 'auth.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        auths: { 'a.example': { auth: 'YTpi' } },
        credHelpers: { 'c.example': 'pass' },
        extra: 1,
      }),
      { mode: 0o644 },
    );
    await saveLogin(file, 'b.example', 'u', 'p');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({
      auths: { 'a.example': { auth: 'YTpi' }, 'b.example': { auth: Buffer.from('u:p').toString('base64') } },
      credHelpers: { 'c.example': 'pass' },
      extra: 1,
    });
    expect(await removeLogin(file, 'b.example')).toBe(true);
    expect(await removeLogin(file, 'b.example')).toBe(false);
    expect(await removeAllLogins(file)).toBe(1);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({
      auths: {},
      credHelpers: { 'c.example': 'pass' },
      extra: 1,
    });
    expect(fs.readdirSync(root)).toEqual(['auth.json']);
  });

  it('refuses a file that is not JSON without quoting it, and leaves it alone', async () => {
    const file = path.join(root, 'auth.json');
    fs.writeFileSync(file, '{"auths": {"x": {"auth": "c2VjcmV0LXZhbHVl"}');
    const error = await saveLogin(file, 'b.example', 'u', 'p').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe(`auth file ${file} is not valid JSON; skiff leaves it as it is`);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"auths": {"x": {"auth": "c2VjcmV0LXZhbHVl"}');
  });

  it('keys are HOST[:PORT][/NAMESPACE], scheme and trailing slash dropped; tags and digests refused', () => {
    expect(authKey('https://quay.io/')).toBe('quay.io');
    expect(authKey('registry.example:5000/team')).toBe('registry.example:5000/team');
    expect(() => authKey('quay.io/team/app:1')).toThrow(UsageError);
    expect(() => authKey('quay.io/app@sha256:abc')).toThrow(UsageError);
  });
});
