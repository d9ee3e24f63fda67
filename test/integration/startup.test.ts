// Issue 15: what a start loads (docs/performance.md "Start-up"). Modules a run never uses are not
// loaded: oclif's plugin matching and command globbing (minimatch, tinyglobby) for skiff's own
// commands and the version, undici's HTTP/2 client (node:http2) for every registry command, the
// store and copy engine for a command that opens no store, and the store and the local transports
// for a registry → registry mirror.
// Each is checked through a module-load hook (module.registerHooks sees ESM imports, require()s
// and builtins alike) that writes what the process loaded when it exits.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';

const HOOK = `import fs from 'node:fs';
import module from 'node:module';
const loaded = new Set();
module.registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context); } });
process.on('exit', () => fs.writeFileSync(process.env.SKIFF_TEST_LOADED, [...loaded].join('\\n')));
`;

let work: { dir: string; cleanup: () => void };
let registry: RunningRegistry;
beforeAll(async () => {
  work = tempDir('skiff-startup-');
  fs.writeFileSync(path.join(work.dir, 'hook.mjs'), HOOK);
  registry = await startRegistry();
  await pushFixture(registry.host, 'gzip', 'start/app:v1');
});
afterAll(async () => {
  await registry?.stop();
  work?.cleanup();
});

let runs = 0;
/** Runs skiff and returns what it printed and every module it loaded (URLs, `node:` builtins). */
async function loading(args: string[]) {
  const list = path.join(work.dir, `loaded-${runs++}.txt`);
  const result = await runCli(args, {
    NODE_OPTIONS: `--import=${path.join(work.dir, 'hook.mjs')}`,
    SKIFF_TEST_LOADED: list,
    SKIFF_STORE: path.join(work.dir, 'store'),
  });
  const modules = fs.readFileSync(list, 'utf8').split('\n');
  const packages = new Set(
    modules.map((url) =>
      url.startsWith('node:') ? url : (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? 'skiff'),
    ),
  );
  return { ...result, modules, packages };
}

describe('what a start loads', () => {
  it.each(
    [['--version'], ['-v'], ['version'], ['mirror', '--help'], ['pull', '-h']].map((args) => [
      args.join(' '),
      args,
    ]),
  )('skiff %s loads oclif without its plugin matching, command globbing, zod or undici', async (_, args) => {
    const run = await loading(args as string[]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^skiff\/\d|USAGE/);
    for (const name of ['minimatch', 'tinyglobby', 'zod', 'undici']) expect(run.packages).not.toContain(name);
    expect(run.packages).toContain('@oclif/core');
  });

  it('skiff help still loads the plugins, and minimatch, which matches their names', async () => {
    const help = await loading(['help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^ {2}autocomplete /m);
    expect(help.packages).toContain('minimatch');
  });

  it('a registry command never loads node:http2 (skiff speaks HTTP/1.1 only)', async () => {
    const tags = await loading(['list-tags', `${registry.host}/start/app`]);
    expect(tags.code, tags.stderr).toBe(0);
    expect(tags.stdout).toContain('v1');
    expect(tags.packages).toContain('undici');
    expect(tags.modules).not.toContain('node:http2');
    expect(tags.modules.some((url) => url.endsWith('/client-h2.js'))).toBe(false);
    // Nor the store or the copy engine: list-tags opens no store and copies nothing.
    expect(tags.modules.filter((url) => /\/dist\/src\/(store|copy)\//.test(url))).toEqual([]);
  });

  it('a registry → registry mirror loads no store module and no local transport', async () => {
    const copy = await loading([
      'mirror',
      `docker://${registry.host}/start/app:v1`,
      `docker://${registry.host}/fresh/app:v1`,
    ]);
    expect(copy.code, copy.stderr).toBe(0);
    expect(copy.stdout).toMatch(/^mirrored /);
    const skiff = copy.modules.map((url) => /\/dist\/src\/(.*)$/.exec(url)?.[1]).filter(Boolean);
    expect(skiff).toContain('transport/registry-dest.js');
    // Neither the store nor the copy engine's path into it (StoreImageDestination, partial pulls).
    expect(skiff.filter((m) => /^(store|images)\/|^copy\/store|^formats\/zstd/.test(m!))).toEqual([]);
    // Nor the local transports the registry copy never opens.
    expect(
      skiff.filter((m) => /^transport\/(dir|docker-archive|oci-dest|oci-layout-dest|store)/.test(m!)),
    ).toEqual([]);
  });

  it('a mirror that is up to date loads neither node:http2 nor oclif plugin matching', async () => {
    const args = [`docker://${registry.host}/start/app:v1`, `docker://${registry.host}/copy/app:v1`];
    const first = await runCli(['mirror', ...args]);
    expect(first.code, first.stderr).toBe(0);
    const again = await loading(['mirror', ...args]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^up to date /);
    expect(again.modules).not.toContain('node:http2');
    expect(again.packages).not.toContain('minimatch');
    expect(again.packages).not.toContain('tinyglobby');
  });
});
