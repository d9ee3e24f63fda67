/**
 * Path resolution inside a root filesystem being built, as if chrooted: symlinks are followed but
 * can never lead outside the root (`..` stops at the root, absolute targets start from it). Every
 * write and deletion of `unpack` goes through here, which is what keeps it inside DIR (docs/design.md §10),
 * whatever the store holds.
 *
 * Synchronous: an unpack resolves a path per entry, and an lstat through the thread pool for each
 * component of each path cost more than the work itself. Directories a walk has seen are
 * remembered, so a path's parents are looked at once, not once per entry below them; whoever
 * removes anything in the tree calls forget(), since a remembered directory may have gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { VerificationError } from '../errors/index.js';

const MAX_SYMLINK_HOPS = 40;

export class RootFs {
  /** Real directories (no symlink on the way) seen since the last removal, by path from the root. */
  private readonly directories = new Set<string>();

  constructor(readonly root: string) {}

  /**
   * The host path where `relative` will be created, creating missing parents (tars may omit
   * directory entries) and replacing non-directories in the way.
   */
  async creatable(relative: string): Promise<string> {
    return this.creatableSync(relative);
  }

  creatableSync(relative: string): string {
    const slash = relative.lastIndexOf('/');
    const name = relative.slice(slash + 1);
    // Entries come in tar order, a directory's files together: their parent was walked just before.
    if (slash > 0 && isPlain(name) && this.directories.has(relative.slice(0, slash)))
      return `${this.root}/${relative}`;
    const parts = relative.split('/');
    parts.pop();
    return this.below(this.walk(parts, true), name, relative);
  }

  /**
   * Resolves a path that must already be there (hard-link targets, whiteouts, directories being
   * finished): parents through symlinks, the last component as is. Creates nothing.
   */
  async existing(relative: string): Promise<string> {
    return this.existingSync(relative);
  }

  existingSync(relative: string): string {
    const parts = relative.split('/');
    const name = parts.pop()!;
    return this.below(this.walk(parts, false), name, relative);
  }

  /** Resolves a path completely, last component included (an opaque directory may be a symlink). */
  followedSync(relative: string): string {
    return this.walk(relative.split('/'), false);
  }

  /** `relative` was just made a real directory at `host`: remembered if no symlink led there. */
  remember(relative: string, host: string): void {
    if (host === `${this.root}/${relative}`) this.directories.add(relative);
  }

  /** Something in the tree was removed: directories seen before may be gone. */
  forget(): void {
    this.directories.clear();
  }

  /**
   * Every path unpack creates or deletes is made here: one plain name in a directory the walk
   * kept inside the root. A name of "", "." or ".." would be the root itself or its parent.
   */
  private below(dir: string, name: string, relative: string): string {
    // walk() returns the root or a directory below it, never "..": a plain name below that is
    // inside. The prefix check says so again, cheaply, in case walk() ever changes.
    const host = `${dir}/${name}`;
    if (!isPlain(name) || !(dir === this.root || dir.startsWith(`${this.root}/`)))
      throw new VerificationError(`entry "${relative}" resolves outside the unpack root`, { path: relative });
    return host;
  }

  private walk(parts: string[], create: boolean): string {
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
      done.push(part);
      const key = done.join('/');
      if (this.directories.has(key)) continue;
      const candidate = path.join(this.root, key);
      const stat = fs.lstatSync(candidate, { throwIfNoEntry: false });
      if (stat?.isSymbolicLink()) {
        done.pop();
        if (++hops > MAX_SYMLINK_HOPS)
          throw new VerificationError(`too many symlinks resolving "${parts.join('/')}"`, {
            path: parts.join('/'),
          });
        const target = fs.readlinkSync(candidate);
        if (target.startsWith('/')) done.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (stat?.isDirectory()) this.directories.add(key);
      else if (create) {
        // An upper layer's directory replaces a lower layer's file, as overlayfs would show it.
        if (stat) fs.rmSync(candidate, { force: true });
        fs.mkdirSync(candidate, { mode: 0o755 });
        this.directories.add(key);
      }
    }
    return path.join(this.root, ...done);
  }
}

/** A name that stays in its directory: not "", ".", "..", nor a path. */
function isPlain(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/');
}
