/**
 * How skiff shows numbers to people: sizes, digests, durations. One place, so `pull`, `mirror`,
 * `images`, `inspect`, `gc`, the progress display and the error messages say a size or a digest
 * the same way. (Machine-readable output, `--json`, carries raw numbers and full digests.)
 */

/** `0 B`, `512 B`, `45.6 kB`, `1.2 GB`: decimal units, as registries and `docker images` count. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `sha256:0123456789ab`: the algorithm and the first 12 hex digits, enough to tell blobs apart. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon >= 0 ? `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}` : digest;
}

/** A measured duration: `12.3 s`, always one decimal. */
export function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A configured limit, as the user would have written it: `30 s`, `2.5 s`. */
export function formatLimit(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? String(seconds) : seconds.toFixed(1)} s`;
}
