/** Flags for commands that talk to registries, and the client they configure. */
import { Flags } from '@oclif/core';
import { UsageError } from '../errors/index.js';
import { RegistryClient } from '../registry/client.js';
import { formatRetryNotice } from '../registry/retry.js';
import { sayOnStderr } from './progress.js';

export const registryFlags = {
  creds: Flags.string({ description: 'credentials USERNAME[:PASSWORD] for the registry' }),
  authfile: Flags.string({ description: 'auth file to use instead of $REGISTRY_AUTH_FILE' }),
  insecure: Flags.boolean({
    description: 'allow plain HTTP and unverified TLS for non-loopback registries',
    default: false,
  }),
  'retry-times': Flags.integer({ description: 'retries of a failed request', default: 4, min: 0 }),
  'retry-delay': Flags.integer({
    description: 'first retry delay in milliseconds (doubles each time)',
    default: 250,
    min: 0,
  }),
  'stall-timeout': Flags.integer({
    description: 'give up (exit 5) when a host sends no data for this many seconds, across retries',
    env: 'SKIFF_STALL_TIMEOUT',
    default: 60,
    min: 1,
  }),
};

export interface RegistryFlagValues {
  creds?: string | undefined;
  authfile?: string | undefined;
  insecure: boolean;
  'retry-times': number;
  'retry-delay': number;
  'stall-timeout': number;
}

/** `say` prints a line on stderr (above the progress bars, when there are any). */
export function registryClient(
  flags: RegistryFlagValues,
  connections = 8,
  say: (line: string) => void = sayOnStderr,
): RegistryClient {
  return new RegistryClient({
    insecure: flags.insecure,
    connections,
    retry: {
      retries: flags['retry-times'],
      minDelayMs: flags['retry-delay'],
      stallTimeoutMs: flags['stall-timeout'] * 1000,
    },
    // On stderr, one line per wait: --json output on stdout stays a clean document.
    onRetry: (notice) => say(`skiff: ${formatRetryNotice(notice)}`),
    credentials: {
      ...(flags.creds ? { explicit: parseCreds(flags.creds) } : {}),
      ...(flags.authfile ? { authFile: flags.authfile } : {}),
    },
  });
}

/** USERNAME:PASSWORD; the password may contain colons; a missing password is read from $SKIFF_PASSWORD. */
function parseCreds(value: string): { username: string; password: string } {
  const colon = value.indexOf(':');
  const username = colon < 0 ? value : value.slice(0, colon);
  const password = colon < 0 ? (process.env.SKIFF_PASSWORD ?? '') : value.slice(colon + 1);
  if (!username) throw new UsageError('--creds needs USERNAME[:PASSWORD]');
  return { username, password };
}
