// The repository explains itself: every pointer a comment or document makes names something a
// reader of the repository can open. `docs/design.md §n` must be a section of docs/design.md,
// `docs/formats.md "Title"` a section of docs/formats.md, `docs/NAME.md` a file; and nothing may
// point at the spec and format notes the project was started from, which are not in it.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCANNED = [
  'src',
  'commands',
  'test',
  'scripts',
  'fixtures/parts',
  'fixtures/lib',
  'bench',
  'docs',
  'README.md',
];
const TEXT = /\.(ts|mjs|js|sh|md)$/;

function files(entry: string): string[] {
  const full = path.join(ROOT, entry);
  if (!fs.existsSync(full)) return [];
  if (fs.statSync(full).isFile()) return [full];
  return fs
    .readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && TEXT.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

function headings(doc: string): string[] {
  return fs
    .readFileSync(path.join(ROOT, 'docs', doc), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('## '))
    .map((line) => line.slice(3).trim());
}

/** Every pointer that leads nowhere, as `file:line: pointer`. */
function deadPointers(): string[] {
  const designSections = new Set(headings('design.md').map((h) => h.match(/^(\d+)\./)?.[1]));
  const formatSections = new Set(headings('formats.md'));
  const dead: string[] = [];
  // Spelled in pieces so this file does not match itself.
  const outside = new RegExp(
    ['SPEC(?:\\.md| ?§)', 'FORMATS\\.md', '\\.\\./shared/', '/work/shared'].join('|'),
  );
  for (const file of SCANNED.flatMap(files)) {
    if (file === import.meta.filename) continue;
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      const where = `${path.relative(ROOT, file)}:${i + 1}`;
      const out = outside.exec(line);
      if (out) dead.push(`${where}: ${out[0]} is not in the repository`);
      for (const m of line.matchAll(/docs\/design\.md,? §(\d+)/g))
        if (!designSections.has(m[1])) dead.push(`${where}: docs/design.md §${m[1]}`);
      for (const m of line.matchAll(/docs\/formats\.md,? "([^"]+)"/g))
        if (!formatSections.has(m[1]!)) dead.push(`${where}: docs/formats.md "${m[1]}"`);
      for (const m of line.matchAll(/docs\/([\w-]+\.(?:md|json))/g))
        if (!fs.existsSync(path.join(ROOT, 'docs', m[1]!))) dead.push(`${where}: docs/${m[1]}`);
    });
  }
  return dead;
}

describe('pointers in comments and documents', () => {
  it('all lead to a file and section in the repository', () => {
    expect(deadPointers()).toEqual([]);
  });
});
