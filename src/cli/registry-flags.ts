/**
 * Flags for commands that talk to registries, and the clients they configure. skopeo's spellings
 * (`--tls-verify=false`, `--src-creds`, …) work beside skiff's own (`--insecure`, `--creds`).
 */
import { Flags } from '@oclif/core';
import { UsageError } from '../errors/index.js';
import type { EndpointReport } from '../mirror/result.js';
import { formatReference, parseReference } from '../reference/index.js';
import { ConnectionBudget, DEFAULT_CONNECTIONS, MIN_CONNECTIONS } from '../registry/budget.js';
import { RegistryClient, type SourceEvent } from '../registry/client.js';
import { formatRateLimit, type RateLimit } from '../registry/rate-limit.js';
import { loadRegistriesConf } from '../registry/registries-conf.js';
import { formatRetryNotice } from '../registry/retry.js';
import { parseAge } from '../util/quantities.js';
import { readSecret } from './prompt.js';

/** For commands that move blobs: the run's connections per registry (docs/network.md "Connections"). */
export const connectionsFlag = Flags.integer({
  description: 'connections per registry, shared by every image and blob of the run',
  default: DEFAULT_CONNECTIONS,
  min: MIN_CONNECTIONS,
  max: 256,
});

export const registryFlags = {
  creds: Flags.string({
    description: 'credentials USERNAME[:PASSWORD] for the registry (asked for on a terminal if omitted)',
  }),
  authfile: Flags.string({ description: 'auth file to use instead of $REGISTRY_AUTH_FILE' }),
  'registries-conf': Flags.string({
    description:
      'registries.conf to use instead of $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf or /etc/containers/registries.conf',
  }),
  insecure: Flags.boolean({
    description: 'allow plain HTTP and unverified TLS for non-loopback registries',
    default: false,
  }),
  'tls-verify': Flags.boolean({
    description:
      'require HTTPS and verified certificates (skopeo spelling: --tls-verify=false is --insecure)',
    allowNo: true,
  }),
  'cert-dir': Flags.string({
    description:
      'directory of *.crt CAs and NAME.cert/NAME.key client certificates for the registry, instead of certs.d',
  }),
  'retry-times': Flags.integer({ description: 'retries of a failed request', default: 4, min: 0 }),
  'retry-delay': Flags.integer({
    description: 'first retry delay in milliseconds (doubles each time)',
    default: 250,
    min: 0,
  }),
  'retry-delay-max': Flags.string({
    description:
      'the longest wait a rate-limiting registry may ask for (Retry-After) before skiff gives up with exit 5, e.g. 60s, 10m, 1h',
    env: 'SKIFF_RETRY_DELAY_MAX',
    default: '60s',
  }),
  'stall-timeout': Flags.integer({
    description: 'give up (exit 5) when a host sends no data for this many seconds, across retries',
    env: 'SKIFF_STALL_TIMEOUT',
    default: 60,
    min: 1,
  }),
};

/** `mirror` talks to two registries: each end may have its own credentials and TLS policy. */
export const endFlags = {
  'src-creds': Flags.string({ description: 'credentials USERNAME[:PASSWORD] for the source registry' }),
  'dest-creds': Flags.string({ description: 'credentials USERNAME[:PASSWORD] for the destination registry' }),
  'src-tls-verify': Flags.boolean({
    description: 'require HTTPS and verified certificates from the source (default: --tls-verify)',
    allowNo: true,
  }),
  'dest-tls-verify': Flags.boolean({
    description: 'require HTTPS and verified certificates from the destination (default: --tls-verify)',
    allowNo: true,
  }),
  'src-cert-dir': Flags.string({ description: 'certificate directory for the source (default: --cert-dir)' }),
  'dest-cert-dir': Flags.string({
    description: 'certificate directory for the destination (default: --cert-dir)',
  }),
};

export interface RegistryFlagValues {
  creds?: string | undefined;
  authfile?: string | undefined;
  'registries-conf'?: string | undefined;
  insecure: boolean;
  'tls-verify'?: boolean | undefined;
  'cert-dir'?: string | undefined;
  'retry-times': number;
  'retry-delay': number;
  'retry-delay-max': string;
  'stall-timeout': number;
}

export interface EndFlagValues {
  'src-creds'?: string | undefined;
  'dest-creds'?: string | undefined;
  'src-tls-verify'?: boolean | undefined;
  'dest-tls-verify'?: boolean | undefined;
  'src-cert-dir'?: string | undefined;
  'dest-cert-dir'?: string | undefined;
}

interface ClientSettings {
  creds: string | undefined;
  credsFlag: string;
  tlsVerify: boolean | undefined;
  certDir: string | undefined;
}

/** Where notices (a retry's wait) go: a line on stderr, above the progress display when there is one. */
export type Say = (line: string) => void;
const sayOnStderr: Say = (line) => process.stderr.write(`${line}\n`);

export async function registryClient(
  flags: RegistryFlagValues,
  connections = DEFAULT_CONNECTIONS,
  say: Say = sayOnStderr,
  /** Collects which registries.conf endpoints failed and which served (for a --json report). */
  sources?: SourceEvent[],
): Promise<RegistryClient> {
  return clientFor(
    flags,
    { creds: flags.creds, credsFlag: '--creds', tlsVerify: undefined, certDir: flags['cert-dir'] },
    new ConnectionBudget(connections),
    say,
    sources,
  );
}

/** The source's and the destination's clients; one shared client when both ends are alike. */
export async function endClients(
  flags: RegistryFlagValues & EndFlagValues,
  connections = DEFAULT_CONNECTIONS,
  say: Say = sayOnStderr,
  /** Collects which registries.conf endpoints of the source failed and which served. */
  sources?: SourceEvent[],
): Promise<{ source: RegistryClient; destination: RegistryClient }> {
  // One budget for both ends: a registry that is source and destination counts its connections once.
  const budget = new ConnectionBudget(connections);
  const source: ClientSettings = {
    creds: flags['src-creds'] ?? flags.creds,
    credsFlag: flags['src-creds'] ? '--src-creds' : '--creds',
    tlsVerify: flags['src-tls-verify'],
    certDir: flags['src-cert-dir'] ?? flags['cert-dir'],
  };
  const destination: ClientSettings = {
    creds: flags['dest-creds'] ?? flags.creds,
    credsFlag: flags['dest-creds'] ? '--dest-creds' : '--creds',
    tlsVerify: flags['dest-tls-verify'],
    certDir: flags['dest-cert-dir'] ?? flags['cert-dir'],
  };
  const sourceClient = await clientFor(flags, source, budget, say, sources);
  const alike =
    source.creds === destination.creds &&
    source.tlsVerify === destination.tlsVerify &&
    source.certDir === destination.certDir;
  return {
    source: sourceClient,
    destination: alike ? sourceClient : await clientFor(flags, destination, budget, say),
  };
}

async function clientFor(
  flags: RegistryFlagValues,
  end: ClientSettings,
  budget: ConnectionBudget,
  say: Say,
  sources?: SourceEvent[],
): Promise<RegistryClient> {
  const tlsVerify = end.tlsVerify ?? flags['tls-verify'];
  if (flags.insecure && tlsVerify === true)
    throw new UsageError('--insecure and --tls-verify contradict each other: give one');
  return new RegistryClient({
    insecure: flags.insecure || tlsVerify === false,
    budget,
    ...(end.certDir ? { certs: { certDir: end.certDir } } : {}),
    retry: {
      retries: flags['retry-times'],
      minDelayMs: flags['retry-delay'],
      maxRetryAfterMs: parseAge(flags['retry-delay-max'], '--retry-delay-max'),
      stallTimeoutMs: flags['stall-timeout'] * 1000,
    },
    // On stderr, one line per wait: --json output on stdout stays a clean document.
    onRetry: (notice) => say(`skiff: ${formatRetryNotice(notice)}`),
    registries: await loadRegistriesConf({ file: flags['registries-conf'] }),
    onSource: (event) => {
      sources?.push(event);
      if (event.kind === 'failed') say(`skiff: ${formatSourceFailure(event)}`);
    },
    credentials: {
      ...(end.creds ? { explicit: await parseCreds(end.creds, end.credsFlag) } : {}),
      ...(flags.authfile ? { authFile: flags.authfile } : {}),
    },
  });
}

/** A registries.conf event as `--json` reports it (`endpoints`, in pull's report and mirror's lines). */
export function endpointReport(event: SourceEvent): EndpointReport {
  const { kind, image: _image, ...rest } = event;
  return { outcome: kind === 'used' ? 'served' : 'failed', ...rest };
}

/**
 * The events of one mirrored image, taken out of the run's list: they name the source reference as
 * the registry source formats it. Taken, so an image mirrored twice in one run gets its own.
 */
export function takeEndpoints(events: SourceEvent[], source: string): EndpointReport[] | undefined {
  let image: string;
  try {
    const ref = parseReference(source);
    if (ref.transport !== 'docker') return undefined;
    image = formatReference(ref);
  } catch {
    return undefined;
  }
  const mine = events.filter((e) => e.image === image);
  if (mine.length === 0) return undefined;
  events.splice(0, events.length, ...events.filter((e) => e.image !== image));
  return mine.map(endpointReport);
}

/** `mirror 127.0.0.1:5001/app failed for the manifest (…); trying 127.0.0.1:5000/app`. */
export function formatSourceFailure(event: Extract<SourceEvent, { kind: 'failed' }>): string {
  const which = event.mirror ? 'mirror' : 'registry';
  return `${event.image}: ${which} ${event.endpoint} failed for ${event.what} (${event.error}); trying ${event.next}`;
}

/**
 * USERNAME:PASSWORD (the password may contain colons). Without a password: $SKIFF_PASSWORD, else
 * asked for on the terminal without echo, else (no terminal: CI, a pipe) a usage error.
 */
async function parseCreds(value: string, flag: string): Promise<{ username: string; password: string }> {
  const colon = value.indexOf(':');
  const username = colon < 0 ? value : value.slice(0, colon);
  if (!username) throw new UsageError(`${flag} needs USERNAME[:PASSWORD]`);
  if (colon >= 0) return { username, password: value.slice(colon + 1) };
  if (process.env.SKIFF_PASSWORD !== undefined) return { username, password: process.env.SKIFF_PASSWORD };
  if (!process.stdin.isTTY || !process.stderr.isTTY)
    throw new UsageError(
      `${flag} ${username} has no password and there is no terminal to ask on: give ${flag} ${username}:PASSWORD or set $SKIFF_PASSWORD`,
    );
  return { username, password: await readSecret(`Password for ${username} (${flag}): `) };
}

/** The rate limits the registries announced during the run (RateLimit-* headers), by registry host. */
export function rateLimits(clients: RegistryClient[]): Record<string, RateLimit> {
  return Object.assign({}, ...clients.map((client) => client.http.rateLimits()));
}

/** Manifest GETs the clients sent, by registry host: what a registry that meters pulls counts. */
export function manifestGets(clients: RegistryClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const client of new Set(clients))
    for (const [host, n] of Object.entries(client.manifestGetCounts()))
      counts[host] = (counts[host] ?? 0) + n;
  return counts;
}

/** --verbose: those rate limits, one line each on stderr. */
export function sayRateLimits(clients: RegistryClient[], say: Say = sayOnStderr): void {
  for (const [host, limit] of Object.entries(rateLimits(clients)))
    say(`rate limit of ${formatRateLimit(host, limit)}`);
}
