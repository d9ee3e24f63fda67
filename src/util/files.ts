/** Small file-system helpers the store's modules share. */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';

/** JSON.parse that answers undefined for text that is not JSON (a torn or damaged record). */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Writes a file atomically: a temp file in the same directory, then a rename. A failed write (a
 * full disk) takes its temp file with it, so the directory stays as it was.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  options: { mode?: number } = {},
): Promise<void> {
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.writeFile(temp, data, options);
    await fsp.rename(temp, file);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
}

/** A directory's entries, or none when it does not exist. */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
