// Issue 12 item 7: the repository explains itself. The README's layout section names every folder
// of src/, and every pointer in a comment or a document names a file that is in the repository.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** Files whose comments and text are read for pointers: the code, the commands, the docs, the README. */
function pointerSources(): string[] {
  const files: string[] = ['README.md'];
  for (const dir of ['src', 'commands', 'docs', 'test', 'scripts', 'bench'])
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true }))
      if (entry.isFile() && /\.(ts|mjs|md|sh)$/.test(entry.name))
        files.push(path.relative(ROOT, path.join(entry.parentPath, entry.name)));
  return files;
}

describe('the repository explains itself', () => {
  it("the README's layout section names every folder of src/, and only folders that exist", () => {
    const readme = read('README.md');
    const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('## Fixtures'));
    const folders = fs
      .readdirSync(path.join(ROOT, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `src/${e.name}`);
    const named = new Set(layout.match(/^src\/[a-z-]+/gm));
    expect([...named].sort()).toEqual(folders.sort());
  });

  it('every file a comment or a document points to is in the repository', () => {
    const missing: string[] = [];
    const pointer = /\b(?:src|test|docs|scripts|bench|fixtures)\/[\w./-]+\.(?:ts|js|mjs|md|json|sh)\b/g;
    for (const file of pointerSources()) {
      for (const target of read(file).match(pointer) ?? []) {
        // Imports name the compiled .js of a .ts source.
        const candidates = [target, target.replace(/\.js$/, '.ts')];
        if (!candidates.some((c) => fs.existsSync(path.join(ROOT, c)))) missing.push(`${file}: ${target}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('no pointer names a document outside the repository (SPEC §n, FORMATS.md)', () => {
    const self = path.relative(ROOT, import.meta.filename);
    const outside = pointerSources().filter(
      (file) => file !== self && /\bSPEC(?:\.md)? ?§|(?<!docs\/)\bFORMATS\.md\b/.test(read(file)),
    );
    expect(outside).toEqual([]);
  });
});
