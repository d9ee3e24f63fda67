// The store's layout has one owner (src/store/layout.ts) and one description (its STORE_LAYOUT
// table, which docs/store.md shows), and the store has one public face (src/store/index.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/digest/index.js';
import { renderStoreLayout, STORE_LAYOUT, Store, StoreLayout } from '../../src/store/index.js';

const repo = path.resolve(import.meta.dirname, '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-layout-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The table's paths, whole (an indented entry lives in the directory above it). */
function tablePaths(): string[] {
  let parent = '';
  return STORE_LAYOUT.flatMap(({ path: where }) => {
    const nested = where.startsWith('  ');
    const full = nested ? parent + where.trim() : where;
    if (!nested) parent = where;
    return full.split(', ').map((alternative, i, all) => {
      // "packs/NAME.pack, NAME.idx": the second names a file in the first's directory.
      return i === 0 ? alternative : path.posix.join(path.posix.dirname(all[0]!), alternative);
    });
  });
}

/** Whether `relative` is a path the table shows, or a directory holding one. */
function shown(relative: string): boolean {
  return tablePaths().some((pattern) => {
    const source = pattern
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      .replace(/<[^>]+>|NAME/g, '[^/]+')
      .replace('/ab/', '/[0-9a-f]{2}/')
      .replace(/\/$/, '');
    return new RegExp(`^${source}(/.*)?$`).test(relative) || pattern.startsWith(`${relative}/`);
  });
}

describe('the store layout', () => {
  it('is the table docs/store.md shows', () => {
    const docs = fs.readFileSync(path.join(repo, 'docs/store.md'), 'utf8');
    expect(docs).toContain(`## Layout\n\n\`\`\`\n${renderStoreLayout()}\`\`\``);
  });

  it('names every path the store uses, and only those', async () => {
    const layout = new StoreLayout(work);
    const digest = sha256('content');
    const used = [
      layout.versionFile,
      layout.packFile('x'),
      layout.packIndexFile('x'),
      layout.looseObject(digest),
      ...Object.values(layout.layer(digest)),
      ...Object.values(layout.image(digest)),
      ...Object.values(StoreLayout.manifestFiles(layout.imageDir(digest), digest)),
      layout.nameFile('registry.test/app:v1', 'linux/amd64'),
      layout.blobRecord(digest),
      layout.sessionFile('1-ab'),
      layout.stagingDir('1-ab'),
      layout.resumeBlobDir(digest),
      layout.lockFile,
      ...layout.directories,
    ];
    for (const file of used) expect(shown(path.relative(work, file)), path.relative(work, file)).toBe(true);
    expect(shown('objects/sha256/zz/x'), 'a path the table does not show').toBe(false);
    // A new store holds what the table lists at its top level, nothing else.
    await Store.open(work);
    const top = new Set(STORE_LAYOUT.filter((e) => !e.path.startsWith(' ')).map((e) => e.path.split('/')[0]));
    expect(fs.readdirSync(work).sort()).toEqual([...top].filter((t) => t !== 'store.lock').sort());
  });
});

describe('the store has one public face', () => {
  it('is imported from src/store/index.ts only, outside src/store', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.ts')) {
          const text = fs.readFileSync(full, 'utf8');
          // Resolved, so src/copy/store/ (the store as a destination) is not mistaken for src/store/.
          for (const match of text.matchAll(/from '(\.[^']*)'/g)) {
            const target = path.relative(repo, path.resolve(path.dirname(full), match[1]!));
            if (target.startsWith('src/store/') && target !== 'src/store/index.js')
              offenders.push(`${path.relative(repo, full)}: ${match[1]}`);
          }
        }
      }
    };
    for (const top of ['src', 'commands', 'test']) walk(path.join(repo, top));
    expect(offenders.filter((o) => !o.startsWith('src/store/'))).toEqual([]);
  });
});
