/**
 * Registry rate limits as the registries announce them, so a user sees how many pulls are left
 * (pull and mirror `--json` as `rateLimit`, `--verbose` on stderr). Two spellings are read:
 *
 * - the IETF draft's `RateLimit-Limit: 100` and `RateLimit-Remaining: 42` (with `RateLimit-Reset`
 *   seconds), as GitLab, Harbor and others send them;
 * - Docker Hub's `ratelimit-limit: 100;w=21600` / `ratelimit-remaining: 76;w=21600`: the quota and
 *   its window in seconds. Docker Hub counts manifest GETs, never HEADs.
 */

export interface RateLimit {
  /** Requests allowed in the window. */
  limit: number;
  /** Requests left in the window. */
  remaining: number;
  /** The window, in seconds, when the registry says it. */
  windowSeconds?: number;
  /** Seconds until the window resets, when the registry says it. */
  resetSeconds?: number;
}

type Headers = Record<string, string | string[] | undefined>;

/** `100`, `100;w=21600`, `100, 100;w=21600`: the first quota and its window. */
function parseQuota(value: string | string[] | undefined): { value: number; window?: number } | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  const match = text && /^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?/.exec(text);
  if (!match) return undefined;
  return { value: Number(match[1]), ...(match[2] ? { window: Number(match[2]) } : {}) };
}

/** The rate limit a response announces, if it announces one. */
export function parseRateLimit(headers: Headers): RateLimit | undefined {
  const limit = parseQuota(headers['ratelimit-limit']);
  const remaining = parseQuota(headers['ratelimit-remaining']);
  if (!limit || !remaining) return undefined;
  const window = limit.window ?? remaining.window;
  const reset = parseQuota(headers['ratelimit-reset']);
  return {
    limit: limit.value,
    remaining: remaining.value,
    ...(window !== undefined ? { windowSeconds: window } : {}),
    ...(reset ? { resetSeconds: reset.value } : {}),
  };
}

/** The latest rate limit each registry announced during a run. */
export class RateLimits {
  private readonly byHost = new Map<string, RateLimit>();

  record(host: string, headers: Headers): void {
    const limit = parseRateLimit(headers);
    if (limit) this.byHost.set(host, limit);
  }

  all(): Record<string, RateLimit> {
    return Object.fromEntries([...this.byHost].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** `127.0.0.1:5000: 76 of 100 requests left (window 6 h)`, for --verbose. */
export function formatRateLimit(host: string, limit: RateLimit): string {
  const window =
    limit.windowSeconds === undefined
      ? ''
      : ` (window ${limit.windowSeconds % 3600 === 0 ? `${limit.windowSeconds / 3600} h` : `${limit.windowSeconds} s`})`;
  const reset = limit.resetSeconds === undefined ? '' : `, resets in ${limit.resetSeconds} s`;
  return `${host}: ${limit.remaining} of ${limit.limit} requests left${window}${reset}`;
}
