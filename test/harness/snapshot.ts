// Snapshots of directories for "the store is byte-for-byte unchanged" and "unpack equals the tree".
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface FileRecord {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  link?: string;
  mtime?: number;
}

/** Every path under `root` with its type, mode, owner, size and content hash. */
export function snapshot(root: string, options: { mtimes?: boolean } = {}): Map<string, FileRecord> {
  const out = new Map<string, FileRecord>();
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = fs.lstatSync(full);
    const record: FileRecord = {
      type: st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isFIFO()
              ? 'fifo'
              : 'other',
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.isFile() ? st.size : 0,
    };
    if (st.isFile()) record.sha256 = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    if (st.isSymbolicLink()) record.link = fs.readlinkSync(full);
    if (options.mtimes && !st.isDirectory()) record.mtime = Math.floor(st.mtimeMs / 1000);
    if (rel !== '') out.set(rel, record);
    if (st.isDirectory())
      for (const child of fs.readdirSync(full).sort()) walk(rel ? `${rel}/${child}` : child);
  };
  walk('');
  return out;
}

/**
 * The store's content: everything but the lock and the resumable state a failed pull may leave
 * (resume/, never read as content).
 */
export function snapshotStore(root: string): Map<string, FileRecord> {
  const all = snapshot(root);
  for (const key of [...all.keys()]) {
    if (key === 'store.lock' || key.startsWith('store.lock/')) all.delete(key);
    if (key === 'resume' || key.startsWith('resume/')) all.delete(key);
  }
  return all;
}

/** Differences between two snapshots, as readable lines (empty when equal). */
export function diffSnapshots(expected: Map<string, FileRecord>, actual: Map<string, FileRecord>): string[] {
  const lines: string[] = [];
  for (const [p, e] of expected) {
    const a = actual.get(p);
    if (!a) lines.push(`missing ${p}`);
    else if (JSON.stringify(e) !== JSON.stringify(a))
      lines.push(`differs ${p}: expected ${JSON.stringify(e)} got ${JSON.stringify(a)}`);
  }
  for (const p of actual.keys()) if (!expected.has(p)) lines.push(`unexpected ${p}`);
  return lines;
}
