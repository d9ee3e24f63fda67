/**
 * Path resolution inside a root filesystem being built, as if chrooted: symlinks are followed but
 * can never lead outside the root (`..` stops at the root, absolute targets start from it). Every
 * write and deletion of `unpack` goes through here, which is what keeps it inside DIR (docs/design.md §10),
 * whatever the store holds.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../errors/index.js';

const MAX_SYMLINK_HOPS = 40;

export class RootFs {
  constructor(readonly root: string) {}

  /**
   * The host path where `relative` will be created, creating missing parents (tars may omit
   * directory entries) and replacing non-directories in the way.
   */
  async creatable(relative: string): Promise<string> {
    const parts = relative.split('/');
    const name = parts.pop()!;
    return this.below(await this.walk(parts, true), name, relative);
  }

  /**
   * Resolves a path that must already be there (hard-link targets, whiteouts, directories being
   * finished): parents through symlinks, the last component as is. Creates nothing.
   */
  async existing(relative: string): Promise<string> {
    const parts = relative.split('/');
    const name = parts.pop()!;
    return this.below(await this.walk(parts, false), name, relative);
  }

  /** Resolves a path completely, last component included (an opaque directory may be a symlink). */
  async followed(relative: string): Promise<string> {
    return this.walk(relative.split('/'), false);
  }

  /**
   * Every path unpack creates or deletes is made here: one plain name in a directory the walk
   * kept inside the root. A name of "", "." or ".." would be the root itself or its parent.
   */
  private below(dir: string, name: string, relative: string): string {
    const host = path.join(dir, name);
    const fromRoot = path.relative(this.root, host);
    const plain = name !== '' && name !== '.' && name !== '..' && !name.includes('/');
    if (
      !plain ||
      fromRoot === '' ||
      fromRoot === '..' ||
      fromRoot.startsWith('../') ||
      path.isAbsolute(fromRoot)
    )
      throw new VerificationError(`entry "${relative}" resolves outside the unpack root`, { path: relative });
    return host;
  }

  private async walk(parts: string[], create: boolean): Promise<string> {
    const done: string[] = [];
    const queue = [...parts];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        done.pop();
        continue;
      }
      const candidate = path.join(this.root, ...done, part);
      const stat = await fsp.lstat(candidate).catch(() => undefined);
      if (stat?.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS)
          throw new VerificationError(`too many symlinks resolving "${parts.join('/')}"`, {
            path: parts.join('/'),
          });
        const target = await fsp.readlink(candidate);
        if (target.startsWith('/')) done.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (!stat && create) await fsp.mkdir(candidate, { mode: 0o755 });
      else if (stat && !stat.isDirectory() && create) {
        // An upper layer's directory replaces a lower layer's file, as overlayfs would show it.
        await fsp.rm(candidate, { force: true });
        await fsp.mkdir(candidate, { mode: 0o755 });
      }
      done.push(part);
    }
    return path.join(this.root, ...done);
  }
}
