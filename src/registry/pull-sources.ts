/**
 * What registries.conf means for one pull, without I/O: a reference → the endpoints to try in
 * order (the mirrors that apply, then the primary location), each with its TLS policy, or the
 * refusal of a blocked registry; and a short name → the fully qualified names to try.
 * containers-registries.conf(5) and containers/image's sysregistriesv2 are the specification.
 */
import { UsageError } from '../errors/index.js';
import { formatReference, parseRegistryReference, type RegistryReference } from '../reference/index.js';
import { hasDomain, type RegistriesConfig, type RegistryEntry } from './registries-conf.js';

export interface PullEndpoint {
  /** The reference rewritten to this endpoint (host, repository; tag and digest kept). */
  reference: RegistryReference;
  /** Plain HTTP and unverified TLS allowed. */
  insecure: boolean;
  /** A mirror, not the primary location. */
  mirror: boolean;
}

export type PullSources =
  | { blocked: false; endpoints: PullEndpoint[] }
  | { blocked: true; entry: RegistryEntry };

/** The endpoints for a reference, in the order to try them; the reference itself without a config. */
export function pullSources(config: RegistriesConfig | undefined, ref: RegistryReference): PullSources {
  const text = formatReference(ref);
  const match = config && findRegistry(config, text);
  if (!match) return { blocked: false, endpoints: [{ reference: ref, insecure: false, mirror: false }] };
  const { entry, length } = match;
  if (entry.blocked) return { blocked: true, entry };
  const byDigest = ref.digest !== undefined;
  const mirrors = entry.mirrors.filter((mirror) => {
    if (entry.mirrorByDigestOnly) return byDigest;
    if (mirror.pullFromMirror === 'digest-only') return byDigest;
    if (mirror.pullFromMirror === 'tag-only') return !byDigest;
    return true;
  });
  const rewrite = (location: string) =>
    location === '' ? ref : parseRegistryReference(`${location}${text.slice(length)}`);
  return {
    blocked: false,
    endpoints: [
      ...mirrors.map((m) => ({ reference: rewrite(m.location), insecure: m.insecure, mirror: true })),
      { reference: rewrite(entry.location), insecure: entry.insecure, mirror: false },
    ],
  };
}

/** The [[registry]] whose prefix matches the longest part of `text`, and that length. */
export function findRegistry(
  config: RegistriesConfig,
  text: string,
): { entry: RegistryEntry; length: number } | undefined {
  let best: { entry: RegistryEntry; length: number } | undefined;
  for (const entry of config.registries) {
    const length = matchingPrefix(text, entry.prefix);
    if (length > (best?.length ?? -1)) best = { entry, length };
  }
  return best;
}

/**
 * How much of `text` (`host/repo[:tag][@digest]`) the prefix matches, or -1: the prefix followed
 * by the end or a separator; `*.example.com` matches any subdomain's host.
 */
export function matchingPrefix(text: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const host = text.split('/')[0]!.replace(/:\d+$/, '');
    const suffix = prefix.slice(1);
    // The wildcard covers the host name only: `sub.example.com[:port]`, never `example.com` itself.
    return host.endsWith(suffix) && host.length > suffix.length ? host.length : -1;
  }
  if (!text.startsWith(prefix)) return -1;
  if (text.length === prefix.length) return prefix.length;
  return ':/@'.includes(text[prefix.length]!) ? prefix.length : -1;
}

/**
 * Whether a host is configured insecure: its own [[registry]] entry (by host, as containers/image
 * decides TLS for a host), or a mirror on it marked insecure.
 */
export function isInsecureHost(config: RegistriesConfig | undefined, host: string): boolean {
  if (!config) return false;
  if (findRegistry(config, host)?.entry.insecure) return true;
  return config.registries.some((entry) =>
    entry.mirrors.some((m) => m.insecure && m.location.split('/')[0] === host),
  );
}

// ---------------------------------------------------------------------------------------------
// Short names

export interface ShortNameResolution {
  /** Fully qualified references to try, in order. */
  candidates: string[];
  /** How they were found, for messages. */
  via: 'qualified' | 'docker' | 'alias' | 'search';
  /** The file that defined the alias. */
  aliasFile?: string;
}

/**
 * A name written without a registry (`alpine`, `org/app:1`): an alias if one is configured, else
 * the unqualified-search registries under the short-name mode. skiff never prompts (it runs in
 * scripts): where podman would ask on a terminal, it acts as podman does without one — enforcing
 * refuses an ambiguous name, permissive and disabled try every search registry in order.
 * Anything else (a transport, a registry host) is returned as it is.
 */
export function resolveShortName(text: string, config: RegistriesConfig | undefined): ShortNameResolution {
  if (!isShortName(text)) return { candidates: [text], via: 'qualified' };
  // Without any registries.conf, Docker's rule: docker.io (as skiff always did).
  if (!config) return { candidates: [text], via: 'docker' };
  const { name, suffix } = splitSuffix(text);
  const alias = config.aliases.get(name);
  if (alias) return { candidates: [`${alias.value}${suffix}`], via: 'alias', aliasFile: alias.file };
  const search = config.searchRegistries;
  const files = config.files.join(', ');
  if (search.length === 0)
    throw new UsageError(
      `short name "${text}" did not resolve to an alias and no unqualified-search registries are defined in ${files}: name the registry (e.g. docker.io/${text})`,
    );
  const candidates = search.map((host) => `${host}/${text}`);
  if (search.length > 1 && config.shortNameMode === 'enforcing')
    throw new UsageError(
      `short name "${text}" is ambiguous (unqualified-search registries ${search.join(', ')}) and short-name-mode is "enforcing": skiff does not prompt, so name the registry (e.g. ${candidates[0]}) or add an alias`,
    );
  return { candidates, via: 'search' };
}

/** Written without transport and without a registry host. */
export function isShortName(text: string): boolean {
  const trimmed = text.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return false;
  if (/^(?:oci|dir|docker-archive):/.test(trimmed)) return false;
  return !hasDomain(trimmed);
}

function splitSuffix(text: string): { name: string; suffix: string } {
  const at = text.indexOf('@');
  const beforeDigest = at < 0 ? text : text.slice(0, at);
  const colon = beforeDigest.lastIndexOf(':');
  const end = colon > beforeDigest.lastIndexOf('/') ? colon : beforeDigest.length;
  return { name: text.slice(0, end), suffix: text.slice(end) };
}
