// deferRequire moves when a CommonJS module loads, never whether it works: the stand-in hands over
// to the real module on first use, and a module that is not where skiff expects it (a dependency
// update moved it) is simply left to load as before.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deferRequire } from '../../src/util/defer-require.js';

const require = createRequire(import.meta.url);

describe('deferRequire', () => {
  it('loads the real module on first use, and it behaves as the real one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-defer-'));
    const file = path.join(dir, 'counted.cjs');
    fs.writeFileSync(
      file,
      'globalThis.__deferLoads = (globalThis.__deferLoads ?? 0) + 1;\nmodule.exports = (x) => x * 2;\nmodule.exports.label = "double";\n',
    );
    const loads = () => (globalThis as { __deferLoads?: number }).__deferLoads ?? 0;
    deferRequire(require, file);
    const double = require(file) as ((x: number) => number) & { label: string };
    expect(loads()).toBe(0);
    expect(double(21)).toBe(42);
    expect(loads()).toBe(1);
    expect(double.label).toBe('double');
    expect(loads()).toBe(1);
    fs.rmSync(dir, { recursive: true });
  });

  it('leaves a module that is not there to its requirer, without throwing', () => {
    expect(() => deferRequire(require, './no-such-module-moved-by-an-update.js')).not.toThrow();
  });
});
