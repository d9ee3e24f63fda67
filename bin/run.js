#!/usr/bin/env node
import v8 from 'node:v8';

// undici parses HTTP with llhttp compiled to WebAssembly. V8 re-compiles hot Wasm with TurboFan in
// the background and, at exit, waits for that compile to finish: about 250 ms on a 2-core machine,
// which is most of a no-op mirror's run. Liftoff's baseline code parses headers just as well (a
// body is handed over as spans, not scanned), so skiff never tiers up.
v8.setFlagsFromString('--liftoff-only');
// oclif checks its own Node engine range (>=18) with semver on every start, ~35 ms; skiff's
// package.json already requires Node 20.
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1';

// The last resort: an error nothing caught (a rejected promise nobody listened to, a throw in a
// stream callback) is a bug in skiff. Say so in one line and exit 1, instead of Node's raw stack
// trace; the stack is printed with --verbose or SKIFF_DEBUG=1.
const internalError = (error) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `skiff: internal error (a bug; please report it): ${message.replace(/\s*\n\s*/g, '; ')}\n`,
  );
  const verbose = process.argv.includes('--verbose') || process.env.SKIFF_DEBUG === '1';
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
};
process.on('unhandledRejection', internalError);
process.on('uncaughtException', internalError);

const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
