/**
 * containers-registries.conf(5), version 2 (and the deprecated version 1 lists): where the files
 * are, parsing (TOML, smol-toml), validation (zod) and the merge of the drop-ins, as
 * containers/image's sysregistriesv2 does it. The result is plain data; `pull-sources.ts` answers
 * questions about it without I/O.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';
import { readdirOrEmpty } from '../util/files.js';
import { lazySchema } from '../util/lazy-schema.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';
export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** What names the entry applies to: `host[:port][/path]`, or `*.domain` for its subdomains. */
  prefix: string;
  /** Where those names really live; '' only for a wildcard prefix (the name's own host). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorEntry[];
  /** The file that defined it, for messages. */
  file: string;
}

export interface Alias {
  /** A fully qualified name without tag or digest. */
  value: string;
  file: string;
}

export interface RegistriesConfig {
  /** The files read, in the order they were merged. */
  files: string[];
  registries: RegistryEntry[];
  searchRegistries: string[];
  shortNameMode: ShortNameMode;
  aliases: ReadonlyMap<string, Alias>;
}

export interface LocateOptions {
  /** `--registries-conf FILE`: replaces the main file (drop-ins still apply, as in skopeo). */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Where the system files live; tests point it elsewhere. */
  systemDir?: string;
  /** podman's recorded aliases; default /var/cache/containers/… for root, else ~/.cache/containers/…. */
  aliasCacheFile?: string;
}

// The man page's default when short-name-mode is absent or empty.
const DEFAULT_SHORT_NAME_MODE: ShortNameMode = 'permissive';

/**
 * Reads the registries configuration a podman user has. Undefined when no file exists anywhere:
 * skiff then keeps Docker's rules (a short name is docker.io's), as before it read the file.
 */
export async function loadRegistriesConf(options: LocateOptions = {}): Promise<RegistriesConfig | undefined> {
  const env = options.env ?? process.env;
  const home = options.home ?? env.HOME ?? os.homedir();
  const systemDir = options.systemDir ?? '/etc/containers';
  const userFile = path.join(home, '.config/containers/registries.conf');
  const named = options.file || env.CONTAINERS_REGISTRIES_CONF;
  let main: string;
  let dropInDirs: string[];
  if (named) {
    main = named;
    dropInDirs = [path.join(systemDir, 'registries.conf.d'), `${userFile}.d`];
  } else if (await exists(userFile)) {
    // A user's own file replaces the system's, system drop-ins included (containers/image).
    main = userFile;
    dropInDirs = [`${userFile}.d`];
  } else {
    main = path.join(systemDir, 'registries.conf');
    dropInDirs = [path.join(systemDir, 'registries.conf.d'), `${userFile}.d`];
  }
  const files: string[] = [];
  const mainText = await readText(main, Boolean(options.file));
  if (mainText !== undefined) files.push(main);
  const parts: ParsedFile[] = mainText === undefined ? [] : [await parseFile(main, mainText)];
  for (const dir of dropInDirs) {
    for (const name of (await readdirOrEmpty(dir)).filter((n) => n.endsWith('.conf')).sort()) {
      const file = path.join(dir, name);
      const text = await readText(file, false);
      if (text === undefined) continue;
      files.push(file);
      parts.push(await parseFile(file, text));
    }
  }
  if (files.length === 0) return undefined;
  const merged = merge(parts);
  // Aliases podman recorded after a prompt win over every registries.conf (containers/image).
  const cache =
    options.aliasCacheFile ??
    path.join(
      process.getuid?.() === 0 ? '/var/cache' : env.XDG_CACHE_HOME || path.join(home, '.cache'),
      'containers/short-name-aliases.conf',
    );
  const cacheText = await readText(cache, false);
  if (cacheText !== undefined) {
    files.push(cache);
    mergeAliases(merged.aliases, (await parseFile(cache, cacheText)).aliases);
  }
  return { ...merged, files };
}

async function exists(file: string): Promise<boolean> {
  return (await readText(file, false)) !== undefined;
}

async function readText(file: string, required: boolean): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!required && (code === 'ENOENT' || code === 'ENOTDIR')) return undefined;
    throw new UsageError(`cannot read registries configuration ${file}: ${code ?? String(error)}`, {
      path: file,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// One file

// Built on first use (util/lazy-schema.ts): a file of comments alone, as distributions ship it,
// needs no schema at all (parseFile), and most commands read no other.
const pullFromMirror = lazySchema(() => z.enum(['all', 'digest-only', 'tag-only']));

const mirrorSchema = lazySchema(() =>
  z.looseObject({
    location: z.string().min(1, 'must name the mirror (host[:port][/path])'),
    insecure: z.boolean().optional(),
    'pull-from-mirror': z.union([z.literal(''), pullFromMirror]).optional(),
  }),
);

const registrySchema = lazySchema(() =>
  z.looseObject({
    prefix: z.string().optional(),
    location: z.string().optional(),
    insecure: z.boolean().optional(),
    blocked: z.boolean().optional(),
    'mirror-by-digest-only': z.boolean().optional(),
    mirror: z.array(mirrorSchema).optional(),
  }),
);

const v1List = lazySchema(() => z.looseObject({ registries: z.array(z.string()).optional() }).optional());

const fileSchema = lazySchema(() =>
  z.looseObject({
    'unqualified-search-registries': z.array(z.string()).optional(),
    'short-name-mode': z.enum(['', 'enforcing', 'permissive', 'disabled']).optional(),
    registry: z.array(registrySchema).optional(),
    aliases: z.record(z.string(), z.string()).optional(),
    registries: z.looseObject({ search: v1List, insecure: v1List, block: v1List }).optional(),
  }),
);

interface ParsedFile {
  registries: RegistryEntry[];
  /** Undefined when the file does not set it (an empty list does: it replaces). */
  searchRegistries: string[] | undefined;
  shortNameMode: ShortNameMode | undefined;
  /** '' erases an alias set by an earlier file. */
  aliases: Map<string, Alias>;
}

async function parseFile(file: string, text: string): Promise<ParsedFile> {
  // Nothing but comments and blank lines (Debian's file) is the empty table: no TOML parser needed.
  if (COMMENTS_ONLY.test(text)) return fromDocument(file, {});
  const { parse, TomlError } = await import('smol-toml');
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const reason = error.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '');
    throw new UsageError(
      `registries configuration ${file} is not valid TOML (line ${error.line}, column ${error.column}): ${reason}`,
      { path: file },
    );
  }
  const checked = fileSchema.safeParse(document);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    bad(file, issue.path, issue.message);
  }
  return fromDocument(file, checked.data!);
}

/** Every line blank or a comment: no key, table or multi-line string can start in such a text. */
const COMMENTS_ONLY = /^(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*(?:#[^\n]*)?$/;

function bad(file: string, key: PropertyKey[], why: string): never {
  throw new UsageError(`registries configuration ${file}: ${formatKey(key)}: ${why}`, { path: file });
}

/** `registry[1].mirror[0].location`: the TOML key, as the user wrote it. */
function formatKey(key: PropertyKey[]): string {
  return key
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
}

function fromDocument(file: string, doc: z.infer<typeof fileSchema>): ParsedFile {
  const v1 = doc.registries;
  if (v1 && (doc.registry || doc['unqualified-search-registries'] || doc['short-name-mode'] || doc.aliases))
    bad(file, ['registries'], 'mixes the version 1 lists with version 2 settings; use version 2 only');
  if (v1) return fromVersion1(file, v1);
  const registries = (doc.registry ?? []).map((raw, i) => registryEntry(file, raw, i));
  const search = doc['unqualified-search-registries'];
  search?.forEach((host, i) => {
    if (!isHost(host)) bad(file, ['unqualified-search-registries', i], `"${host}" is not a host[:port]`);
  });
  const aliases = new Map<string, Alias>();
  for (const [name, value] of Object.entries(doc.aliases ?? {})) {
    checkAlias(file, name, value);
    aliases.set(name, { value, file });
  }
  return {
    registries,
    searchRegistries: search,
    shortNameMode: doc['short-name-mode'] || undefined,
    aliases,
  };
}

function fromVersion1(file: string, v1: NonNullable<z.infer<typeof fileSchema>['registries']>): ParsedFile {
  const plain = (location: string, setting: Partial<RegistryEntry>): RegistryEntry => ({
    prefix: location,
    location,
    insecure: false,
    blocked: false,
    mirrorByDigestOnly: false,
    mirrors: [],
    file,
    ...setting,
  });
  const byLocation = new Map<string, RegistryEntry>();
  for (const host of v1.insecure?.registries ?? []) byLocation.set(host, plain(host, { insecure: true }));
  for (const host of v1.block?.registries ?? [])
    byLocation.set(host, { ...(byLocation.get(host) ?? plain(host, {})), blocked: true });
  return {
    registries: [...byLocation.values()],
    searchRegistries: v1.search?.registries,
    shortNameMode: undefined,
    aliases: new Map(),
  };
}

function registryEntry(file: string, raw: z.infer<typeof registrySchema>, index: number): RegistryEntry {
  const key = (...rest: PropertyKey[]) => ['registry', index, ...rest];
  const prefix = cleanLocation(file, key('prefix'), raw.prefix ?? '');
  let location = cleanLocation(file, key('location'), raw.location ?? '');
  const wildcard = prefix.startsWith('*.');
  if (prefix.includes('*') && (!wildcard || prefix.slice(2).includes('*') || prefix.includes('/')))
    bad(file, key('prefix'), `"${prefix}": a wildcard is only allowed as "*.domain", at the start`);
  if (location.includes('*')) bad(file, key('location'), 'may not hold a wildcard');
  if (!prefix && !location) bad(file, key(), 'needs a prefix or a location');
  if (!location && !wildcard) location = prefix;
  const byDigestOnly = raw['mirror-by-digest-only'] ?? false;
  const mirrors = (raw.mirror ?? []).map((m, i): MirrorEntry => {
    const pull = m['pull-from-mirror'] || undefined;
    if (byDigestOnly && pull)
      bad(
        file,
        key('mirror', i, 'pull-from-mirror'),
        'cannot be set when the registry sets mirror-by-digest-only; use one of them',
      );
    return {
      location: cleanLocation(file, key('mirror', i, 'location'), m.location),
      insecure: m.insecure ?? false,
      pullFromMirror: pull ?? 'all',
    };
  });
  return {
    prefix: prefix || location,
    location,
    insecure: raw.insecure ?? false,
    blocked: raw.blocked ?? false,
    mirrorByDigestOnly: byDigestOnly,
    mirrors,
    file,
  };
}

/** A location is `host[:port][/path]`: no scheme (containers refuse one), no trailing slash. */
function cleanLocation(file: string, key: PropertyKey[], value: string): string {
  const trimmed = value.trim().replace(/\/+$/, '');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed))
    bad(file, key, `"${value}": give host[:port][/path]; a URI scheme is not supported`);
  return trimmed;
}

function isHost(text: string): boolean {
  return /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(text);
}

function checkAlias(file: string, name: string, value: string): void {
  const key = ['aliases', name];
  if (/[@]/.test(name) || /:[^/]*$/.test(name) || hasDomain(name))
    bad(file, key, 'an alias must be a short name without registry, tag or digest');
  if (value === '') return;
  if (!hasDomain(value)) bad(file, key, `"${value}" must be a fully qualified name (registry/repository)`);
  if (value.includes('@') || /:[^/]*$/.test(value.slice(value.indexOf('/'))))
    bad(file, key, `"${value}" may not carry a tag or digest`);
}

/** Whether a name's first component is a registry host, by Docker's rule. */
export function hasDomain(name: string): boolean {
  const slash = name.indexOf('/');
  if (slash < 0) return false;
  const first = name.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

// ---------------------------------------------------------------------------------------------
// Merging the main file and its drop-ins

function merge(parts: ParsedFile[]): Omit<RegistriesConfig, 'files'> & { aliases: Map<string, Alias> } {
  const byPrefix = new Map<string, RegistryEntry>();
  let searchRegistries: string[] = [];
  let shortNameMode: ShortNameMode = DEFAULT_SHORT_NAME_MODE;
  const aliases = new Map<string, Alias>();
  for (const part of parts) {
    // A later file's entry replaces an earlier one of the same prefix; others add up.
    for (const entry of part.registries) byPrefix.set(entry.prefix, entry);
    if (part.searchRegistries !== undefined) searchRegistries = part.searchRegistries;
    if (part.shortNameMode !== undefined) shortNameMode = part.shortNameMode;
    mergeAliases(aliases, part.aliases);
  }
  return { registries: [...byPrefix.values()], searchRegistries, shortNameMode, aliases };
}

function mergeAliases(into: Map<string, Alias>, from: ReadonlyMap<string, Alias>): void {
  for (const [name, alias] of from) {
    if (alias.value === '') into.delete(name);
    else into.set(name, alias);
  }
}
