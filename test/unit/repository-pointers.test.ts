// Issue 12 item 7: the repository explains itself. The README's layout section names every folder
// of src/; every pointer in a comment or a document names something a reader of the repository can
// open (a file; `docs/design.md §n` a section of it; `docs/formats.md "Title"` a heading of it); and
// nothing points at the spec and format notes the project was started from, which are not in it.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SELF = import.meta.filename;
const SCANNED = [
  'README.md',
  'src',
  'commands',
  'docs',
  'test',
  'scripts',
  'bench',
  'fixtures/parts',
  'fixtures/lib',
];
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** The files whose comments and text are read for pointers (this one excepted), relative to ROOT. */
function pointerSources(): string[] {
  return SCANNED.flatMap((entry) => {
    const full = path.join(ROOT, entry);
    if (!fs.existsSync(full)) return [];
    if (fs.statSync(full).isFile()) return [entry];
    return fs
      .readdirSync(full, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /\.(ts|mjs|js|md|sh)$/.test(e.name))
      .map((e) => path.join(e.parentPath, e.name))
      .filter((file) => file !== SELF)
      .map((file) => path.relative(ROOT, file));
  });
}

function headings(doc: string): string[] {
  return read(`docs/${doc}`)
    .split('\n')
    .filter((line) => line.startsWith('## '))
    .map((line) => line.slice(3).trim());
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

  it('every file, section and heading a comment or a document points to is in the repository', () => {
    const designSections = new Set(headings('design.md').map((h) => h.match(/^(\d+)\./)?.[1]));
    const formatSections = new Set(headings('formats.md'));
    // Not inside another path (a fixture's own app/src/…).
    const file =
      /(?<![\w/.-])(?:src|test|docs|scripts|bench|fixtures)\/[\w./-]+\.(?:ts|js|mjs|md|json|sh)\b/g;
    const dead: string[] = [];
    for (const source of pointerSources()) {
      read(source)
        .split('\n')
        .forEach((line, i) => {
          const where = `${source}:${i + 1}`;
          // Imports name the compiled .js of a .ts source.
          for (const target of line.match(file) ?? [])
            if (![target, target.replace(/\.js$/, '.ts')].some((c) => fs.existsSync(path.join(ROOT, c))))
              dead.push(`${where}: ${target}`);
          for (const m of line.matchAll(/docs\/design\.md,? §(\d+)/g))
            if (!designSections.has(m[1])) dead.push(`${where}: docs/design.md §${m[1]}`);
          for (const m of line.matchAll(/docs\/formats\.md,? "([^"]+)"/g))
            if (!formatSections.has(m[1]!)) dead.push(`${where}: docs/formats.md "${m[1]}"`);
        });
    }
    expect(dead).toEqual([]);
  });

  it('no pointer names a document outside the repository', () => {
    const outside = /SPEC(?:\.md| ?§)|(?<!docs\/)\bFORMATS\.md\b|\.\.\/shared\/|\/work\/shared/;
    const found = pointerSources().filter((source) => outside.test(read(source)));
    expect(found).toEqual([]);
  });
});
