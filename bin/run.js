#!/usr/bin/env node
// Only what Node 16 and later can parse and run comes before the version check: skiff's dependencies
// (undici 8, @oclif/core 5, ...) need Node 22, and would fail on an older one with a stack trace
// from deep inside a package instead of one line saying what to do.
// Node's own modules are imported where they are used, not at the top: a command that starts Node
// again with its heap flags (below) needs none of them before process.execve, and importing
// child_process, fs, url and the rest cost that first start ~20 ms of CPU for nothing.

const NEEDED = [22, 22];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < NEEDED[0] || (major === NEEDED[0] && minor < NEEDED[1])) {
  // A checkout brings Node 24 in node_modules (the `node` devDependency): a skiff linked onto the
  // PATH (`npm link`) but started by an older system Node runs on that one instead.
  const { fileURLToPath } = await import('node:url');
  const fs = await import('node:fs');
  const ownNode = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (fs.existsSync(ownNode) && process.env.SKIFF_REEXEC !== ownNode) {
    await runOn(ownNode);
  } else {
    process.stderr.write(
      `skiff: needs Node >= ${NEEDED.join('.')} (this is ${process.version}); run it as 'npx skiff …' inside the checkout, which brings Node 24\n`,
    );
    process.exit(1);
  }
} else if (wantsHeapFlags()) {
  // Same process id, same stdio: the command line runs again on a Node whose heap is set up for it.
  process.execve(
    process.execPath,
    [process.execPath, ...heapFlags(), ...process.execArgv, ...process.argv.slice(1)],
    {
      // glibc raises its mmap threshold to the size of the largest buffer freed (a TOC's 33 MB),
      // after which every freed window and batch stays in the main arena: fixed at glibc's default,
      // a 3.6 GB full pull peaked at 233 MiB instead of 268 at the same CPU (docs/memory.md).
      MALLOC_MMAP_THRESHOLD_: '131072',
      ...process.env,
      SKIFF_HEAP_FLAGS: '1',
    },
  );
} else {
  await start();
}

/**
 * V8's heap for the commands that move layers (docs/memory.md). By default V8 reserves a young
 * generation of up to 3 x 16 MiB and lets the old one grow to up to 4x what survived the last full
 * collection: on a 100k-file pull that slack, not live data, was most of the peak RSS. A small
 * young generation and a heap that grows by half of what is live keep the peak proportional to
 * the live heap without capping it, so no image is too big to pull (a --max-old-space-size cap
 * would be). Flags that size a heap only take effect when Node starts, so such a command starts
 * Node once more with them (process.execve: no second process stays behind), unless Node was
 * already given them.
 */
function heapFlags() {
  return ['--max-semi-space-size=4', '--heap-growing-percent=50'];
}

function wantsHeapFlags() {
  const command = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
  if (!['pull', 'mirror', 'push', 'save', 'unpack'].includes(command)) return false;
  if (typeof process.execve !== 'function' || process.env.SKIFF_HEAP_FLAGS) return false;
  const given = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  return !given.includes('--max-semi-space-size');
}

async function start() {
  const { default: module } = await import('node:module');
  const { default: os } = await import('node:os');
  const { default: path } = await import('node:path');
  const { default: v8 } = await import('node:v8');
  // Node caches the code it compiles for skiff and its dependencies: start-up then skips parsing
  // and compiling them. The cache is the user's, never the repository's; worker threads (the blob
  // writer, the rebuild hasher) find it through the environment.
  const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const cache = module.enableCompileCache(path.join(cacheHome, 'skiff', 'compile-cache'));
  if (cache.directory) process.env.NODE_COMPILE_CACHE ??= cache.directory;
  // undici parses HTTP with llhttp compiled to WebAssembly. V8 re-compiles hot Wasm with TurboFan in
  // the background and, at exit, waits for that compile to finish: about 250 ms on a 2-core machine,
  // which is most of a no-op mirror's run. Liftoff's baseline code parses headers just as well (a
  // body is handed over as spans, not scanned), so skiff never tiers up. (Measured on Node 20; on
  // Node 24 neither a no-op mirror nor a pull differed with or without it, on a busy machine.)
  v8.setFlagsFromString('--liftoff-only');
  // oclif checks its own Node engine range with semver on every start, ~35 ms; the check above
  // already holds skiff to what its dependencies need.
  process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1';

  process.on('unhandledRejection', internalError);
  process.on('uncaughtException', internalError);
  // One `skiff: …` line for every error, those that escape a command included (src/cli/main.ts).
  await import('../dist/src/cli/defer-oclif.js');
  const { main } = await import('../dist/src/cli/main.js');
  await main(import.meta.url);
}

/** Runs this same command line on another Node, as a child that stands in for this process. */
async function runOn(node) {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(node, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, SKIFF_REEXEC: node },
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
}

// The last resort: an error nothing caught (a rejected promise nobody listened to, a throw in a
// stream callback) is a bug in skiff. Say so in one line and exit 1, instead of Node's raw stack
// trace; the stack is printed with --verbose or SKIFF_DEBUG=1.
function internalError(error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `skiff: internal error (a bug; please report it): ${message.replace(/\s*\n\s*/g, '; ')}\n`,
  );
  const verbose = process.argv.includes('--verbose') || process.env.SKIFF_DEBUG === '1';
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}
