// The module boundaries issue 12 drew, kept by a test so they stay drawn: the partial-fetch
// contract (byte ranges and their errors) lives in the leaf src/ranges, which src/registry and the
// local sources both import; nothing in src/registry reaches up into src/transport; and the
// engine's modules do not depend on the registry's error classes (they meet those errors through
// the contract). See docs/design.md §2.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

interface Import {
  file: string;
  /** The imported module, as a path relative to src/ without extension (e.g. `registry/client`). */
  target: string;
  names: string[];
}

/** Every relative import of every .ts file under src/<dir>. */
function importsOf(root: string, dir: string): Import[] {
  const base = path.join(root, dir);
  if (!fs.existsSync(base)) return [];
  const found: Import[] = [];
  for (const entry of fs.readdirSync(base, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const text = fs.readFileSync(file, 'utf8');
    // `import … from '…'` and `export … from '…'`, over several lines if need be.
    for (const match of text.matchAll(/^(?:import|export)\s+(?:type\s+)?([^;]*?)\s+from\s+'(\.[^']+)'/gms)) {
      const target = path
        .relative(root, path.resolve(path.dirname(file), match[2]!))
        .replace(/\.js$/, '')
        .replace(/\/index$/, '');
      const names = [...match[1]!.matchAll(/[A-Za-z_$][\w$]*/g)].map((m) => m[0]).filter((n) => n !== 'type');
      found.push({ file: path.relative(root, file), target, names });
    }
  }
  return found;
}

/** The imports that break a boundary, as `file -> target` lines. */
function boundaryViolations(root: string): string[] {
  const violations: string[] = [];
  for (const i of importsOf(root, 'registry')) {
    if (i.target.startsWith('transport'))
      violations.push(`${i.file} -> ${i.target} (registry imports transport)`);
  }
  for (const dir of ['pull', 'inspect', 'copy']) {
    for (const i of importsOf(root, dir)) {
      const errors = i.names.filter((n) => /^[A-Z]\w*Error$/.test(n));
      if (i.target.startsWith('registry') && errors.length > 0)
        violations.push(`${i.file} -> ${i.target} (registry error classes ${errors.join(', ')})`);
    }
  }
  for (const i of importsOf(root, 'ranges')) {
    if (i.target !== 'errors') violations.push(`${i.file} -> ${i.target} (src/ranges is a leaf)`);
  }
  return violations;
}

describe('module boundaries', () => {
  it('src/registry, src/ranges and the engine import only what they may', () => {
    expect(boundaryViolations(SRC)).toEqual([]);
  });

  it('the check sees a violation, in an import over several lines too', () => {
    const root = fs.mkdtempSync(path.join(import.meta.dirname, '.boundaries-'));
    try {
      fs.mkdirSync(path.join(root, 'registry'));
      fs.mkdirSync(path.join(root, 'pull'));
      fs.writeFileSync(
        path.join(root, 'registry', 'a.ts'),
        "import type { ByteRange } from '../transport/ranges.js';\n",
      );
      fs.writeFileSync(
        path.join(root, 'pull', 'b.ts'),
        "import {\n  fetchThing,\n  RangesNotHonouredError,\n} from '../registry/client.js';\nimport type { RegistryClient } from '../registry/client.js';\n",
      );
      expect(boundaryViolations(root)).toEqual([
        'registry/a.ts -> transport/ranges (registry imports transport)',
        'pull/b.ts -> registry/client (registry error classes RangesNotHonouredError)',
      ]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
