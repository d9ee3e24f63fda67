/**
 * Extended attributes (PAX `SCHILY.xattr.*` records; the store keeps each value as base64) are set
 * with setxattr(2) through `@napi-rs/xattr`, a native package with prebuilt binaries (Node has no
 * xattr API). It is optional and loaded on the first entry that has any: an image without
 * xattrs never loads it, and where it is not installed (or has no binary for the platform) the
 * attributes are reported as not applied, with why, as are those the file system or the user may
 * not set (`trusted.*` and most of `security.*` need root; `user.*` is refused on symlinks).
 */
import { createRequire } from 'node:module';
import type { StoredEntry } from '../store/index.js';
import type { Skipped } from './index.js';

export const XATTR_PACKAGE = '@napi-rs/xattr';

interface XattrApi {
  setAttributeSync(path: string, name: string, value: Uint8Array): void;
}

type Loaded = { api: XattrApi } | { unavailable: string };

let loaded: Loaded | undefined;

/** The package, or why it cannot be used; asked once per process. */
function load(): Loaded {
  if (loaded) return loaded;
  try {
    // NODE_PATH is honoured by require: a private install can be tried without the checkout's.
    const api = createRequire(import.meta.url)(XATTR_PACKAGE) as XattrApi;
    loaded = { api };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    loaded = {
      unavailable:
        code === 'MODULE_NOT_FOUND'
          ? `${XATTR_PACKAGE} is not installed`
          : `${XATTR_PACKAGE} cannot be loaded here: ${(error as Error).message.split('\n')[0]}`,
    };
  }
  return loaded;
}

export class XattrWriter {
  /** Sets `entry`'s attributes on `dest`; what cannot be set is added to `skipped`, with why. */
  apply(dest: string, entry: StoredEntry, skipped: Skipped[]): void {
    const names = Object.keys(entry.xattrs ?? {});
    if (names.length === 0) return;
    const xattrs = load();
    if ('unavailable' in xattrs) {
      skipped.push({
        path: entry.path,
        what: `extended attributes ${names.join(', ')}`,
        why: xattrs.unavailable,
      });
      return;
    }
    for (const name of names) {
      try {
        xattrs.api.setAttributeSync(dest, name, Buffer.from(entry.xattrs![name]!, 'base64'));
      } catch (error) {
        skipped.push({ path: entry.path, what: `extended attribute ${name}`, why: reason(error) });
      }
    }
  }
}

/** The errno's meaning where there is one: the package's messages are the OS's, with a prefix. */
function reason(error: unknown): string {
  const message = (error as Error).message ?? String(error);
  if (/not supported|ENOTSUP|EOPNOTSUPP/i.test(message)) return 'not supported by the file system';
  if (/not permitted|EPERM|EACCES|denied/i.test(message))
    return 'not permitted (needs root, or not on this file type)';
  return message;
}
