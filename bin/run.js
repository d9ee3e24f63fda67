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

// One `skiff: …` line for every error, those that escape a command included (src/cli/main.ts).
const { main } = await import('../dist/src/cli/main.js');
await main(import.meta.url);
