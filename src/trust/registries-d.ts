/**
 * containers-registries.d(5): where an image's signatures are kept. Every `*.yaml` of one
 * directory (`--registries.d`, else `$HOME/.config/containers/registries.d` when it exists, else
 * `/etc/containers/registries.d`) is read; `default-docker` and per-scope `docker:` entries say
 * whether to read sigstore attachments and which lookaside store holds simple signatures.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';
import type { RegistryReference } from '../reference/index.js';
import { policyScopes } from './policy.js';

const NamespaceSchema = z.strictObject({
  lookaside: z.string().min(1).optional(),
  'lookaside-staging': z.string().min(1).optional(),
  // The names before lookaside (still read by containers/image).
  sigstore: z.string().min(1).optional(),
  'sigstore-staging': z.string().min(1).optional(),
  'use-sigstore-attachments': z.boolean().optional(),
});
type Namespace = z.infer<typeof NamespaceSchema>;

const FileSchema = z.strictObject({
  'default-docker': NamespaceSchema.nullish(),
  docker: z.record(z.string(), NamespaceSchema.nullish()).nullish(),
});

export interface RegistriesD {
  dir: string | undefined;
  defaultDocker: Namespace | undefined;
  docker: Map<string, Namespace>;
}

/** Where signatures of one registry image are read from. */
export interface SignatureSources {
  /** Base URL of the lookaside store (file:, http:, https:), if any. */
  lookaside: string | undefined;
  useSigstoreAttachments: boolean;
}

export const SYSTEM_REGISTRIES_D = '/etc/containers/registries.d';

export async function loadRegistriesD(
  options: { flag?: string | undefined; home?: string | undefined; systemDir?: string | undefined } = {},
): Promise<RegistriesD> {
  const home = options.home ?? process.env.HOME ?? os.homedir();
  const user = path.join(home, '.config', 'containers', 'registries.d');
  const dir = options.flag ?? ((await isDir(user)) ? user : (options.systemDir ?? SYSTEM_REGISTRIES_D));
  const config: RegistriesD = { dir, defaultDocker: undefined, docker: new Map() };
  const names = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' && !options.flag) return [];
    throw new UsageError(`registries.d ${dir}: ${error.message}`, { path: dir }, error);
  });
  for (const name of names.filter((n) => n.endsWith('.yaml')).sort()) {
    const file = path.join(dir, name);
    mergeFile(config, file, await fs.readFile(file, 'utf8'));
  }
  return config;
}

/**
 * The YAML parser (72 modules), required on first use: most machines have no registries.d, and a
 * pull or mirror there does not pay for loading it.
 */
const parseYaml = (text: string): unknown =>
  (createRequire(import.meta.url)('yaml') as typeof Yaml).parse(text);

export function mergeFile(config: RegistriesD, file: string, text: string): void {
  const fail = (why: string): never => {
    throw new UsageError(`registries.d file ${file} is invalid: ${why}`, { path: file });
  };
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (error) {
    fail((error as Error).message.split('\n')[0]!);
  }
  const parsed = FileSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    fail(`${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  const data = parsed.data!;
  if (data['default-docker']) {
    if (config.defaultDocker) fail('default-docker is defined in more than one file');
    config.defaultDocker = data['default-docker'];
  }
  for (const [scope, namespace] of Object.entries(data.docker ?? {})) {
    if (config.docker.has(scope)) fail(`docker scope "${scope}" is defined in more than one file`);
    config.docker.set(scope, namespace ?? {});
  }
}

/**
 * The most specific entry that says something wins, per setting (containers/image looks for the
 * first scope with a lookaside URL, and separately for the first that sets the attachments flag).
 */
export function signatureSources(config: RegistriesD, reference: RegistryReference): SignatureSources {
  const { identity, namespaces } = policyScopes(reference);
  const entries = [identity, ...namespaces]
    .map((scope) => config.docker.get(scope))
    .concat(config.defaultDocker)
    .filter((n): n is Namespace => n !== undefined);
  const lookaside = entries.map((n) => n.lookaside ?? n.sigstore).find((url) => url !== undefined);
  const attachments = entries.map((n) => n['use-sigstore-attachments']).find((b) => b !== undefined);
  return { lookaside: lookaside ?? defaultLookaside(), useSigstoreAttachments: attachments ?? false };
}

/** containers/image's built-in lookaside store when nothing is configured. */
function defaultLookaside(): string {
  if (process.getuid?.() === 0) return 'file:///var/lib/containers/sigstore';
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return `file://${path.join(data, 'containers', 'sigstore')}`;
}

async function isDir(dir: string): Promise<boolean> {
  return (await fs.stat(dir).catch(() => undefined))?.isDirectory() ?? false;
}
