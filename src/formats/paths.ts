/**
 * Layer entry paths (docs/design.md §10): entries may not escape the root. Absolute names, `..` components
 * and NUL bytes reject the layer; `./` prefixes, `.` components and trailing slashes are normalised.
 * Whiteouts (`.wh.NAME`) must hide a plain sibling NAME: unpack deletes what they name.
 */
import { VerificationError } from '../errors/index.js';

/** Already canonical: relative, no empty, `.` or `..` components, no trailing slash. */
const CANONICAL = /^(?!\.{1,2}(?:\/|$))[^/\0]+(?:\/(?!\.{1,2}(?:\/|$))[^/\0]+)*$/;

/** Returns the path relative to the layer root ('' for the root itself), or throws for an unsafe name. */
export function normalizeEntryPath(name: string, what = 'tar entry'): string {
  const normalized = normalizePath(name, what);
  if (normalized.includes(WHITEOUT_PREFIX)) checkWhiteouts(normalized, name, what);
  return normalized;
}

function normalizePath(name: string, what: string): string {
  // Most names are canonical already, or only carry tar's usual "./" prefix or a directory's "/".
  if (CANONICAL.test(name)) return name;
  const trimmed = name.startsWith('./') ? name.slice(2) : name;
  const bare = trimmed.endsWith('/') ? trimmed.slice(0, -1) : trimmed;
  if (bare !== name && CANONICAL.test(bare)) return bare;
  return normalizeSlowly(name, what);
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/**
 * A whiteout hides one sibling, so it is always a path's last component and names a plain name:
 * the whiteout of "", "." or ".." would make unpack delete the directory holding it or its
 * parent, and a whiteout with something beneath it names a path, not a sibling.
 */
function checkWhiteouts(path: string, name: string, what: string): void {
  const parts = path.split('/');
  for (const [i, part] of parts.entries()) {
    if (!part.startsWith(WHITEOUT_PREFIX)) continue;
    if (i < parts.length - 1)
      throw new VerificationError(`${what} "${name}" is an invalid whiteout: it contains "/"`, {
        path: name,
      });
    const hidden = part.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..')
      throw new VerificationError(`${what} "${name}" is an invalid whiteout (of "${hidden}")`, {
        path: name,
      });
  }
}

function normalizeSlowly(name: string, what: string): string {
  if (name.includes('\0')) throw new VerificationError(`${what} name contains a NUL byte`, { path: name });
  if (name.startsWith('/'))
    throw new VerificationError(`${what} "${name}" has an absolute path`, { path: name });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..')
      throw new VerificationError(`${what} "${name}" escapes the root with ".."`, { path: name });
    parts.push(part);
  }
  return parts.join('/');
}

/** Hard-link targets name another entry of the image: the same rules apply. */
export function normalizeLinkTarget(target: string, entry: string): string {
  const normalized = normalizeEntryPath(target, `hard link "${entry}" target`);
  if (normalized === '')
    throw new VerificationError(`hard link "${entry}" points at the root`, { path: entry });
  return normalized;
}

/** Every proper ancestor of a normalised path, nearest the root first: 'a/b/c' → ['a', 'a/b']. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}
