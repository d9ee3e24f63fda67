/**
 * Credential lookup for a registry host, as containers/image (skopeo, podman) and docker do it:
 * command-line flags, then the containers auth files, then docker's config.json with its
 * `credHelpers`/`credsStore` helpers (docs/design.md §2). Secrets never reach an error message or `source`.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { SkiffError, UsageError } from '../errors/index.js';

export type Credential =
  | { kind: 'basic'; username: string; password: string }
  // docker's "identitytoken" (or a helper's Username "<token>"): the refresh_token of an OAuth2 token POST.
  | { kind: 'identity-token'; token: string; username?: string };

/** What a `docker-credential-NAME get` helper prints on success. */
export interface HelperAnswer {
  ServerURL?: string;
  Username: string;
  Secret: string;
}

export type HelperRunner = (helper: string, serverURL: string) => Promise<HelperAnswer | undefined>;

export interface CredentialOptions {
  /** From --creds / --username --password: always wins. */
  explicit?: { username: string; password: string };
  /** An --authfile flag: replaces $REGISTRY_AUTH_FILE. */
  authFile?: string;
  /** Default process.env (REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, HOME, PATH, DOCKER_CONFIG). */
  env?: NodeJS.ProcessEnv;
  /** Default $HOME, else os.homedir(). */
  home?: string;
  /** Injectable for tests; the default spawns `docker-credential-<helper> get`. */
  runHelper?: HelperRunner;
  /** Time limit for the default helper runner; default 30 s. */
  helperTimeoutMs?: number;
}

/** `source` names a file path or a helper program, never a secret. */
export interface FoundCredential {
  credential: Credential;
  source: string;
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
// Docker stores and asks helpers for Docker Hub under its v1 index URL, so helpers only know that name.
const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';
const HELPER_TIMEOUT_MS = 30_000;
const HELPER_OUTPUT_LIMIT = 1024 * 1024;

export async function findCredentials(
  host: string,
  repository: string | undefined,
  options: CredentialOptions = {},
): Promise<FoundCredential | undefined> {
  if (options.explicit) {
    const { username, password } = options.explicit;
    return { credential: { kind: 'basic', username, password }, source: 'command-line flags' };
  }
  const env = options.env ?? process.env;
  const home = options.home ?? env.HOME ?? os.homedir();
  const runHelper =
    options.runHelper ??
    ((helper, serverURL) =>
      runCredentialHelper(helper, serverURL, { env, timeoutMs: options.helperTimeoutMs }));
  const target: Target = { host: canonicalHost(host), repository: repository?.replace(/^\/+|\/+$/g, '') };
  for (const file of authFileLocations(options.authFile, env, home)) {
    const parsed = await readAuthFile(file);
    const found = parsed && (await lookInFile(parsed, target, runHelper));
    if (found) return found;
  }
  return undefined;
}

/** The files to consult, most important first (containers/image order, then docker's). */
function authFileLocations(authFile: string | undefined, env: NodeJS.ProcessEnv, home: string): string[] {
  const files: string[] = [];
  const userFile = authFile || env.REGISTRY_AUTH_FILE;
  if (userFile) files.push(userFile);
  const uid = process.getuid?.();
  // Without XDG_RUNTIME_DIR (root in CI, typically) podman login writes to /run/containers/$UID.
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  else if (uid !== undefined) files.push(`/run/containers/${uid}/auth.json`);
  files.push(path.join(env.XDG_CONFIG_HOME || path.join(home, '.config'), 'containers', 'auth.json'));
  files.push(path.join(env.DOCKER_CONFIG || path.join(home, '.docker'), 'config.json'));
  return [...new Set(files.map((file) => path.resolve(file)))];
}

// ---------------------------------------------------------------------------------------------
// Matching inside one file

interface Target {
  /** Canonical host: lower case, Docker Hub aliases folded to docker.io. */
  host: string;
  repository: string | undefined;
}

interface AuthEntry {
  host: string;
  /** Namespace or repository the key is limited to; '' for the whole registry. */
  scope: string;
  /** Keys written as URLs (docker login https://...) rank below the plain form podman writes. */
  fromURL: boolean;
  credential: Credential | undefined;
}

interface AuthFile {
  path: string;
  auths: AuthEntry[];
  credHelpers: { host: string; helper: string }[];
  credsStore: string | undefined;
}

async function lookInFile(file: AuthFile, target: Target, runHelper: HelperRunner) {
  const helper = file.credHelpers.find((entry) => entry.host === target.host)?.helper;
  if (helper) {
    const found = await askHelper(helper, target.host, file.path, runHelper);
    if (found) return found;
  }
  const entry = bestEntry(file.auths, target);
  if (entry?.credential) return { credential: entry.credential, source: file.path };
  // A credHelpers entry overrides credsStore for its host, as in docker.
  if (!helper && file.credsStore) return askHelper(file.credsStore, target.host, file.path, runHelper);
  return undefined;
}

/** The most specific usable key for the target: repository, then namespace, then registry. */
function bestEntry(entries: AuthEntry[], target: Target): AuthEntry | undefined {
  const matching = entries.filter((entry) => entry.credential && scopeMatches(entry, target));
  // Array.prototype.sort is stable: among equals the first key in the file wins.
  matching.sort((a, b) => b.scope.length - a.scope.length || Number(a.fromURL) - Number(b.fromURL));
  return matching[0];
}

function scopeMatches(entry: AuthEntry, target: Target): boolean {
  if (entry.host !== target.host) return false;
  if (entry.scope === '') return true;
  const repository = target.repository;
  return repository !== undefined && (repository === entry.scope || repository.startsWith(`${entry.scope}/`));
}

function canonicalHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/**
 * `https://index.docker.io/v1/` and `http://host:5000` name a whole registry (the path is an API
 * path); a plain `quay.io/org/repo` is scoped to that namespace or repository.
 */
function parseKey(key: string): { host: string; scope: string; fromURL: boolean } {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(key.trim());
  const rest = key.trim().slice(scheme?.[0].length ?? 0);
  const slash = rest.indexOf('/');
  const host = canonicalHost(slash < 0 ? rest : rest.slice(0, slash));
  if (scheme || slash < 0) return { host, scope: '', fromURL: Boolean(scheme) };
  return { host, scope: rest.slice(slash + 1).replace(/\/+$/, ''), fromURL: false };
}

// ---------------------------------------------------------------------------------------------
// Reading and validating a file

// A helper name becomes part of a program name: no path separators, so a config cannot point outside PATH.
const helperName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a helper name such as "pass" (for docker-credential-pass)');

const authEntrySchema = z
  .looseObject({
    auth: z.string().nullish(),
    username: z.string().nullish(),
    password: z.string().nullish(),
    identitytoken: z.string().nullish(),
  })
  .transform((entry, ctx) => {
    const result = entryCredential(entry);
    if (typeof result === 'string') {
      ctx.addIssue({ code: 'custom', message: result, path: ['auth'] });
      return z.NEVER;
    }
    return result;
  });

const authFileSchema = z.looseObject({
  auths: z.record(z.string(), authEntrySchema.nullish()).nullish(),
  credHelpers: z.record(z.string(), helperName).nullish(),
  // Docker Desktop leaves "credsStore": "" behind on uninstall; that means no store.
  credsStore: z.union([z.literal(''), helperName]).nullish(),
});

type RawEntry = {
  auth?: string | null;
  username?: string | null;
  password?: string | null;
  identitytoken?: string | null;
};

/** The credential an entry carries, undefined for docker's `{}` placeholders, or what is wrong with it. */
function entryCredential(entry: RawEntry): Credential | undefined | string {
  let username = entry.username ?? '';
  let password = entry.password ?? '';
  if (entry.auth) {
    const decoded = decodeBase64(entry.auth);
    if (decoded === undefined) return 'is not valid base64';
    const colon = decoded.indexOf(':');
    if (colon < 0) return 'does not decode to "username:password"';
    // Only the first colon separates: passwords may contain colons. Trailing NULs are old padding.
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1).replace(/\0+$/, '');
  }
  if (entry.identitytoken) {
    return { kind: 'identity-token', token: entry.identitytoken, ...(username ? { username } : {}) };
  }
  if (!username && !password) return undefined;
  return { kind: 'basic', username, password };
}

/** Strict base64 (Buffer.from would silently skip garbage); padding optional, line breaks allowed as in Go. */
function decodeBase64(text: string): string | undefined {
  const compact = text.replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  const unpadded = compact.replace(/=+$/, '');
  if (unpadded.length % 4 === 1 || (compact.length !== unpadded.length && compact.length % 4 !== 0)) {
    return undefined;
  }
  return Buffer.from(unpadded, 'base64').toString('utf8');
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  const text = await readText(file);
  if (text === undefined) return undefined;
  const json = parseJSON(file, text);
  const parsed = authFileSchema.safeParse(json ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${formatPath(issue.path)} ` : '';
    throw new UsageError(`credentials file ${file} is malformed: ${where}${issue?.message ?? 'invalid'}`, {
      path: file,
    });
  }
  const { auths, credHelpers, credsStore } = parsed.data;
  return {
    path: file,
    auths: Object.entries(auths ?? {}).map(([key, credential]) => ({
      ...parseKey(key),
      credential: credential ?? undefined,
    })),
    credHelpers: Object.entries(credHelpers ?? {}).map(([key, helper]) => ({
      host: parseKey(key).host,
      helper,
    })),
    credsStore: credsStore || undefined,
  };
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`cannot read credentials file ${file}: ${code ?? 'unknown error'}`, { path: file });
  }
}

/** Parses the JSON text; an empty file counts as empty (docker accepts it). */
function parseJSON(file: string, text: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') return undefined;
  try {
    return JSON.parse(body);
  } catch (error) {
    // V8's message may quote the text around the fault, which may be a secret: keep only the position.
    const position = /position (\d+)/.exec(String((error as Error).message))?.[1];
    const at = position === undefined ? '' : ` (${lineAndColumn(body, Number(position))})`;
    throw new UsageError(`credentials file ${file} is not valid JSON${at}`, { path: file });
  }
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

function formatPath(segments: PropertyKey[]): string {
  return segments
    .map((segment, index) => {
      if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment)) {
        return index === 0 ? segment : `.${segment}`;
      }
      return `[${JSON.stringify(typeof segment === 'symbol' ? String(segment) : segment)}]`;
    })
    .join('');
}

// ---------------------------------------------------------------------------------------------
// Credential helpers

async function askHelper(
  helper: string,
  host: string,
  configFile: string,
  runHelper: HelperRunner,
): Promise<FoundCredential | undefined> {
  const serverURL = host === DOCKER_HUB ? DOCKER_HUB_SERVER_URL : host;
  let answer: HelperAnswer | undefined;
  try {
    answer = await runHelper(helper, serverURL);
  } catch (error) {
    if (!(error instanceof SkiffError)) throw error;
    throw new UsageError(`${error.message} (configured in ${configFile})`, { path: configFile });
  }
  if (!answer?.Secret) return undefined;
  const credential: Credential =
    answer.Username === '<token>'
      ? { kind: 'identity-token', token: answer.Secret }
      : { kind: 'basic', username: answer.Username, password: answer.Secret };
  return { credential, source: `docker-credential-${helper}` };
}

const helperAnswerSchema = z.looseObject({
  ServerURL: z.string().optional(),
  Username: z.string().default(''),
  Secret: z.string(),
});

interface HelperRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `docker-credential-<helper> get` with the server URL on stdin, as docker does. Resolves
 * undefined when the helper has no credentials for it; throws a UsageError naming the helper
 * (never the output that might hold the secret) on any other failure.
 */
export async function runCredentialHelper(
  helper: string,
  serverURL: string,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number | undefined } = {},
): Promise<HelperAnswer | undefined> {
  const program = `docker-credential-${helper}`;
  const run = await spawnHelper(
    program,
    serverURL,
    options.env ?? process.env,
    options.timeoutMs ?? HELPER_TIMEOUT_MS,
  );
  if (run.code !== 0) {
    if (/credentials not found/i.test(`${run.stdout}\n${run.stderr}`)) return undefined;
    const status = run.signal ? `killed by ${run.signal}` : `exit status ${run.code}`;
    throw new UsageError(`credential helper ${program} failed for ${serverURL} (${status})${complaint(run)}`);
  }
  return parseHelperAnswer(program, serverURL, run.stdout);
}

function parseHelperAnswer(program: string, serverURL: string, stdout: string): HelperAnswer {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new UsageError(`credential helper ${program} printed something other than JSON for ${serverURL}`);
  }
  const parsed = helperAnswerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${formatPath(issue.path)} ` : '';
    throw new UsageError(
      `credential helper ${program} answered malformed JSON for ${serverURL}: ${where}${issue?.message ?? ''}`,
    );
  }
  return parsed.data;
}

/** The helper's own first line of complaint, unless it looks like it could carry credentials. */
function complaint(run: HelperRun): string {
  const line = (run.stderr.trim() || run.stdout.trim()).split('\n')[0]?.trim() ?? '';
  if (!line || line.startsWith('{') || line.includes('"Secret"')) return '';
  return `: ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`;
}

function spawnHelper(
  program: string,
  input: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<HelperRun> {
  return new Promise((resolve, reject) => {
    // Not detached: helpers like pass may need the terminal for a passphrase prompt.
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      action();
    };
    const fail = (message: string) =>
      settle(() => {
        child.kill('SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        reject(new UsageError(message));
      });
    const timer = setTimeout(
      () => fail(`credential helper ${program} did not answer within ${timeoutMs / 1000} s`),
      timeoutMs,
    );
    const collect = (chunks: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > HELPER_OUTPUT_LIMIT) fail(`credential helper ${program} printed more than 1 MiB`);
      else chunks.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));
    child.on('error', (error: NodeJS.ErrnoException) => fail(spawnFailure(program, error)));
    child.on('close', (code, signal) =>
      settle(() =>
        resolve({
          code,
          signal,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        }),
      ),
    );
    // A helper may exit without reading its input; its exit status is what counts.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

function spawnFailure(program: string, error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT') return `credential helper ${program} is not installed (not found on PATH)`;
  return `credential helper ${program} could not be started: ${error.code ?? error.message}`;
}
