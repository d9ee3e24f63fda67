/**
 * Turning a refused write (ENOSPC, EDQUOT, EROFS) anywhere under the store into StoreWriteError,
 * naming the file system that refused it, so a full disk is never reported as corrupt input.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ErrorContext, SkiffError, StoreWriteError, writeRefusedErrno } from '../errors/index.js';

/** The StoreWriteError for `error` if it is a refused write, else undefined. */
export function storeWriteFailure(
  error: unknown,
  storeRoot: string,
  context: ErrorContext = {},
): StoreWriteError | undefined {
  if (error instanceof StoreWriteError) return error.withContext(context);
  const errno = writeRefusedErrno(error);
  if (!errno) return undefined;
  const known = error instanceof SkiffError ? error.context : {};
  return new StoreWriteError(errno, deviceOf(storeRoot), storeRoot, { ...context, ...known }, error);
}

/** "SOURCE (mounted at DIR)" for the mount holding `file`, from /proc; the path itself elsewhere. */
export function deviceOf(file: string): string {
  let mounts: string;
  try {
    mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return file;
  }
  const target = realpathOrSelf(file);
  let best: { source: string; at: string } | undefined;
  for (const line of mounts.split('\n')) {
    const [source, at] = line.split(' ').map(unescapeMountField);
    if (!source || !at || !isWithin(target, at)) continue;
    if (!best || at.length > best.at.length) best = { source, at };
  }
  return best ? `${best.source} (mounted at ${best.at})` : file;
}

function realpathOrSelf(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

function isWithin(file: string, dir: string): boolean {
  return dir === '/' || file === dir || file.startsWith(`${dir}/`);
}

/** /proc/self/mounts writes spaces, tabs, newlines and backslashes as octal escapes. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}
