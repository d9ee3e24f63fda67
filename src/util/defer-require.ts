/**
 * A CommonJS module that a dependency requires when it loads but calls only on paths skiff does not
 * take, replaced in require's cache by a stand-in that loads the real module on first use. The
 * stand-in is callable and forwards every property read and call to the real module, so whoever
 * required it sees the real module's behaviour whenever it does use it; only the loading moves.
 * Nothing in node_modules is changed. Each use says which module requires the deferred one and why
 * it is not needed (src/registry/http.ts, src/cli/defer-oclif.ts); test/integration/startup.test.ts
 * checks that they stay unloaded.
 */
import { Module } from 'node:module';

export function deferRequire(require: NodeJS.Require, specifier: string, paths?: string[]): void {
  let file: string;
  try {
    file = require.resolve(specifier, paths ? { paths } : undefined);
  } catch {
    // A dependency update moved the module: loading it eagerly costs time, not correctness
    // (test/integration/startup.test.ts then says what loads again).
    return;
  }
  if (require.cache[file]) return;
  let real: unknown;
  const load = (): object => {
    if (real === undefined) {
      delete require.cache[file];
      real = require(file);
    }
    return real as object;
  };
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = new Proxy(function deferred() {}, {
    apply: (_, self, args) => Reflect.apply(load() as (...args: unknown[]) => unknown, self, args),
    get: (_, key) => Reflect.get(load(), key),
    has: (_, key) => Reflect.has(load(), key),
  });
  require.cache[file] = standIn;
}
