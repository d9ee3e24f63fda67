/**
 * Writing the containers auth file (containers-auth.json(5)) as `podman login` and `podman logout`
 * do: the file credentials.ts reads first, mode 0600, replaced atomically, every other entry and
 * key kept as it was. Neither the password nor the file's text ever reaches a message.
 */
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';
import { writeFileAtomic } from '../util/files.js';

export interface AuthFileOptions {
  /** --authfile. */
  authFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  home?: string;
}

/**
 * Where login writes: --authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
 * else podman's /run/containers/UID/auth.json (credentials.ts reads them in that order), and where
 * that directory cannot be made, ~/.config/containers/auth.json.
 */
export async function authFileForWriting(options: AuthFileOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const home = options.home ?? env.HOME ?? os.homedir();
  const named = options.authFile || env.REGISTRY_AUTH_FILE;
  if (named) return path.resolve(named);
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  const uid = process.getuid?.();
  if (uid !== undefined) {
    const runDir = `/run/containers/${uid}`;
    try {
      await mkdir(runDir, { recursive: true, mode: 0o700 });
      return path.join(runDir, 'auth.json');
    } catch {
      // Not ours to create (no /run/containers for this user): the per-user config file.
    }
  }
  return path.join(env.XDG_CONFIG_HOME || path.join(home, '.config'), 'containers', 'auth.json');
}

/** The key a login is stored under: `host[/namespace…]`, without scheme or trailing slash. */
export function authKey(registry: string): string {
  const key = registry
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/+$/, '');
  const slash = key.indexOf('/');
  const repositoryPart = slash < 0 ? '' : key.slice(slash);
  if (key === '' || key.includes('@') || repositoryPart.includes(':'))
    throw new UsageError(`"${registry}" is not a registry (HOST[:PORT][/NAMESPACE])`);
  return key;
}

export async function saveLogin(
  file: string,
  key: string,
  username: string,
  password: string,
): Promise<void> {
  const document = await readDocument(file);
  const auths = authsOf(document, file);
  auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeDocument(file, { ...document, auths });
}

/** Removes one login; false when the file holds none for `key`. */
export async function removeLogin(file: string, key: string): Promise<boolean> {
  const document = await readDocument(file);
  const auths = authsOf(document, file);
  if (!(key in auths)) return false;
  delete auths[key];
  await writeDocument(file, { ...document, auths });
  return true;
}

/** Removes every login in the file; other keys (credHelpers, credsStore) stay. The count removed. */
export async function removeAllLogins(file: string): Promise<number> {
  const document = await readDocument(file);
  const count = Object.keys(authsOf(document, file)).length;
  if (count > 0) await writeDocument(file, { ...document, auths: {} });
  return count;
}

const documentSchema = z.looseObject({ auths: z.record(z.string(), z.unknown()).nullish() });
type AuthDocument = z.infer<typeof documentSchema>;

function authsOf(document: AuthDocument, file: string): Record<string, unknown> {
  if (document.auths === undefined || document.auths === null) return {};
  if (typeof document.auths !== 'object') throw malformed(file, '"auths" is not an object');
  return { ...document.auths };
}

async function readDocument(file: string): Promise<AuthDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return {};
    throw new UsageError(`cannot read auth file ${file}: ${code ?? 'unknown error'}`, { path: file });
  }
  if (text.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    // The parser's message may quote the file's text, which holds secrets: not repeated.
    throw malformed(file, 'not valid JSON');
  }
  const parsed = documentSchema.safeParse(json);
  if (!parsed.success) throw malformed(file, 'not an object with "auths" as an object');
  return parsed.data;
}

function malformed(file: string, why: string): UsageError {
  return new UsageError(`auth file ${file} is ${why}; skiff leaves it as it is`, { path: file });
}

async function writeDocument(file: string, document: AuthDocument): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // Created 0600 before a byte is written, then renamed over the old file: never readable by others,
  // never half-written.
  await writeFileAtomic(file, `${JSON.stringify(document, null, '\t')}\n`, { mode: 0o600 });
}
