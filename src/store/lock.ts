/**
 * The store lock: held briefly by pulls while they register a session, and by gc for its whole
 * run. proper-lockfile handles stale locks (a killed holder) by the lock's age.
 */
import path from 'node:path';
import lockfile from 'proper-lockfile';

export async function withStoreLock<T>(root: string, work: () => Promise<T>): Promise<T> {
  const release = await lockfile.lock(root, {
    lockfilePath: path.join(root, 'store.lock'),
    stale: 30_000,
    update: 5_000,
    retries: { retries: 120, minTimeout: 100, maxTimeout: 1_000 },
    realpath: false,
  });
  try {
    return await work();
  } finally {
    await release();
  }
}
