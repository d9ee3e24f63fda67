/**
 * Quantities as people write them on a command line: sizes (`500MB`, `10GiB`, `64g`, `1048576`)
 * and ages (`7d`, `12h`, `30m`, `45s`, `0`).
 */
import { UsageError } from '../errors/index.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  // Single letters are binary, as in docker and podman (`--memory 10g`).
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Bytes for `text`; a UsageError naming `flag` for anything else. */
export function parseSize(text: string, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match && UNITS[match[2]!.toLowerCase()];
  const bytes = match && unit ? Math.floor(Number(match[1]) * unit) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a size (e.g. 500MB, 10GiB, 1048576)`);
  return bytes;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds for `7d`, `12h`, `30m`, `45s` or `0`; a UsageError naming `flag` for anything else. */
export function parseAge(text: string, flag: string): number {
  const match = /^(\d+)([smhd])?$/.exec(text.trim());
  if (!match || (match[2] === undefined && match[1] !== '0'))
    throw new UsageError(
      `${flag} ${JSON.stringify(text)}: expected a number and a unit (s, m, h, d), e.g. 7d`,
    );
  return Number(match[1]) * (match[2] ? UNIT_MS[match[2]]! : 0);
}
