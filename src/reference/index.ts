/**
 * Image references (docs/design.md §2): registry references with Docker's normalisation rules, the local
 * transports `oci:`, `dir:` and `docker-archive:`, and `store:`, an image in skiff's own store.
 */
import path from 'node:path';
import { type Digest, parseDigest } from '../digest/index.js';
import { UsageError } from '../errors/index.js';

export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API endpoint differs from the name users write. */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

export interface RegistryReference {
  transport: 'docker';
  /** Registry as users name it (`docker.io`, `quay.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Host[:port] the API is served from. */
  endpoint: string;
  /** Repository path, e.g. `library/alpine`. */
  repository: string;
  tag?: string;
  digest?: Digest;
}

export interface OciLayoutReference {
  transport: 'oci';
  dir: string;
  /** The `org.opencontainers.image.ref.name` to select; absent means "the only image in the layout". */
  tag?: string;
}

export interface DirReference {
  transport: 'dir';
  dir: string;
}

export interface DockerArchiveReference {
  transport: 'docker-archive';
  file: string;
  /** `name:tag` inside the archive, or `@N` for the N-th image; absent means the only image. */
  image?: string;
}

/**
 * An image in a skiff store: `store:IMAGE` in the default store, `store:[ROOT]IMAGE` in the store at
 * ROOT (the bracket form is containers-storage's, and is how commands pass their --store on).
 * IMAGE is whatever names a stored image: `NAME[:TAG]`, `NAME@sha256:…`, a config or manifest
 * digest, or a digest prefix (src/images findImage).
 */
export interface StoreReference {
  transport: 'store';
  /** The store's directory; absent: the default store ($SKIFF_STORE, else the XDG data home). */
  root?: string;
  image: string;
}

export type ImageReference =
  | RegistryReference
  | OciLayoutReference
  | DirReference
  | DockerArchiveReference
  | StoreReference;

// Docker's reference grammar (distribution/reference), anchored per part.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_PART = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const MAX_NAME_LENGTH = 255;

export function parseReference(input: string): ImageReference {
  const text = input.trim();
  if (text === '') throw new UsageError('empty image reference');
  if (text.startsWith('docker://')) return parseRegistryReference(text.slice('docker://'.length), input);
  if (text.startsWith('oci:')) return parseOciReference(text.slice(4), input);
  if (text.startsWith('dir:')) return { transport: 'dir', dir: requirePath(text.slice(4), input) };
  if (text.startsWith('docker-archive:'))
    return parseArchiveReference(text.slice('docker-archive:'.length), input);
  // `store:5000/app` stays a registry host named "store" with a port, as Docker reads it.
  if (text.startsWith('store:') && !/^store:\d{1,5}\//.test(text))
    return parseStoreReference(text.slice('store:'.length), input);
  // `scheme://` is never a registry host (a port is digits), so any scheme but docker:// is a
  // mistyped or unsupported transport, not a host with a bad port.
  const scheme = /^([A-Za-z][\w+.-]*):\/\//.exec(text)?.[1];
  const transport = scheme ?? /^([a-z][a-z0-9-]*):(?!\d)/.exec(text)?.[1];
  if (transport && (scheme || (!text.includes('/') && !text.includes('.')))) {
    throw new UsageError(
      `image reference ${input}: unknown transport "${transport}:" (use docker://, oci:, dir:, docker-archive: or store:)`,
    );
  }
  return parseRegistryReference(text, input);
}

/** Parses a registry reference written without transport, as `docker pull` accepts it. */
export function parseRegistryReference(text: string, original = text): RegistryReference {
  const fail = (why: string): never => {
    throw new UsageError(`invalid image reference "${original}": ${why}`);
  };
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1), 'digest');
    } catch (error) {
      fail((error as Error).message);
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) fail(`bad tag "${tag}"`);
  }
  if (rest === '') fail('missing repository name');
  const { registry, path: repoPath } = splitDomain(rest, fail);
  let repository = repoPath;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  for (const component of repository.split('/')) {
    if (!COMPONENT.test(component)) {
      fail(
        component.toLowerCase() !== component
          ? 'repository names must be lowercase'
          : `bad repository component "${component}"`,
      );
    }
  }
  if (`${registry}/${repository}`.length > MAX_NAME_LENGTH)
    fail(`name longer than ${MAX_NAME_LENGTH} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return {
    transport: 'docker',
    registry,
    endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

function splitDomain(name: string, fail: (why: string) => never): { registry: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const looksLikeDomain =
    first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!looksLikeDomain && first.toLowerCase() === first) return { registry: DOCKER_HUB, path: name };
  if (!looksLikeDomain) fail('repository names must be lowercase');
  validateDomain(first, fail);
  const registry = first === 'index.docker.io' || first === DOCKER_HUB_ENDPOINT ? DOCKER_HUB : first;
  return { registry, path: name.slice(slash + 1) };
}

function validateDomain(domain: string, fail: (why: string) => never): void {
  let host = domain;
  const ipv6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(domain);
  if (ipv6) return;
  const colon = domain.lastIndexOf(':');
  if (colon >= 0) {
    const port = domain.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) fail(`bad port "${port}"`);
    host = domain.slice(0, colon);
  }
  if (!host.split('.').every((part) => DOMAIN_PART.test(part))) fail(`bad registry host "${host}"`);
}

function parseOciReference(spec: string, original: string): OciLayoutReference {
  const { location, suffix } = splitLocalSuffix(spec);
  return { transport: 'oci', dir: requirePath(location, original), ...(suffix ? { tag: suffix } : {}) };
}

function parseArchiveReference(spec: string, original: string): DockerArchiveReference {
  const { location, suffix } = splitLocalSuffix(spec);
  return {
    transport: 'docker-archive',
    file: requirePath(location, original),
    ...(suffix ? { image: suffix } : {}),
  };
}

function parseStoreReference(spec: string, original: string): StoreReference {
  let image = spec;
  let root: string | undefined;
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']');
    if (close < 0) throw new UsageError(`image reference ${original}: "[" without "]" around the store path`);
    root = requirePath(spec.slice(1, close), original);
    image = spec.slice(close + 1);
  }
  if (image.trim() === '') throw new UsageError(`image reference ${original}: missing image name or digest`);
  return { transport: 'store', ...(root === undefined ? {} : { root }), image };
}

/** The same stored image in the store at `root` (a command's --store), unless the reference names one. */
export function inStore(ref: StoreReference, root: string): StoreReference {
  return ref.root === undefined ? { ...ref, root: path.resolve(root) } : ref;
}

/**
 * `PATH[:SUFFIX]`, split at the first colon as containers/image does: the suffix may itself hold
 * colons (`docker.io/library/alpine:latest` inside an archive), a path may not.
 */
function splitLocalSuffix(spec: string): { location: string; suffix?: string } {
  const colon = spec.indexOf(':');
  if (colon < 0) return { location: spec };
  const suffix = spec.slice(colon + 1);
  return { location: spec.slice(0, colon), ...(suffix ? { suffix } : {}) };
}

function requirePath(location: string, original: string): string {
  if (location === '') throw new UsageError(`image reference ${original}: missing path`);
  return path.resolve(location);
}

/** The canonical text of a reference, e.g. `docker.io/library/alpine:latest`. */
export function formatReference(ref: ImageReference): string {
  switch (ref.transport) {
    case 'docker':
      return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
    case 'oci':
      return `oci:${ref.dir}${ref.tag ? `:${ref.tag}` : ''}`;
    case 'dir':
      return `dir:${ref.dir}`;
    case 'docker-archive':
      return `docker-archive:${ref.file}${ref.image ? `:${ref.image}` : ''}`;
    case 'store':
      return `store:${ref.root === undefined ? '' : `[${ref.root}]`}${ref.image}`;
  }
}

/**
 * A stored image's name as written after `store:` or to rmi/save: a reference as pull normalises
 * it, and also a bare `NAME:TAG` whose tag would read as a transport (`app:stable`): in the store
 * a name is never a transport.
 */
export function parseStoredName(text: string): ImageReference {
  try {
    return parseReference(text);
  } catch (error) {
    if (/^[a-z][a-z0-9-]*:(?!\/\/)/.test(text.trim())) return parseRegistryReference(text.trim(), text);
    throw error;
  }
}

/** The name an image is recorded under in the store: `registry/repo:tag` (or `@digest`). */
export function storeName(ref: ImageReference): string {
  if (ref.transport !== 'docker') return formatReference(ref);
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : `@${ref.digest}`}`;
}

/** Loopback hosts may be reached over plain HTTP without a flag, as Docker and crane allow. */
export function isLoopbackHost(hostWithPort: string): boolean {
  const host = stripPort(hostWithPort).toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

export function stripPort(hostWithPort: string): string {
  const ipv6 = /^\[([^\]]+)\](?::\d+)?$/.exec(hostWithPort);
  if (ipv6) return ipv6[1]!;
  const colon = hostWithPort.lastIndexOf(':');
  return colon >= 0 && hostWithPort.indexOf(':') === colon ? hostWithPort.slice(0, colon) : hostWithPort;
}
