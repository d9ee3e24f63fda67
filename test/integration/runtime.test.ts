// Issue 11: the Node skiff runs on, what an older one says, where the compile cache goes, and what
// an unknown command says. The checkout brings Node 24 (the `node` devDependency); the system Node
// of the machines this runs on is older, which is what the old-Node cases use.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/run.js');
const OWN_NODE = path.join(ROOT, 'node_modules/node/bin/node');

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const cleanup of cleanups) cleanup();
});
function scratch(): string {
  const { dir, cleanup } = tempDir('skiff-runtime-');
  cleanups.push(cleanup);
  return dir;
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.replace(/^v/, '').split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** The system's Node, where it is older than skiff needs (as on the machines this project runs on). */
const OLD_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find((candidate) => {
  if (!fs.existsSync(candidate)) return false;
  const version = spawnSync(candidate, ['--version'], { encoding: 'utf8' }).stdout.trim();
  return version !== '' && !atLeast(version, 22, 22);
});

/** The environment without anything that would choose the compile cache for Node itself. */
function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of names) delete env[name];
  return env;
}

describe('the Node skiff runs on', () => {
  it('tests and the CLI they start run on Node >= 22.22, the same one', async () => {
    expect(atLeast(process.version, 22, 22)).toBe(true);
    const result = await runCli(['version', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).node).toBe(process.versions.node);
  });

  it.skipIf(!OLD_NODE)(
    'an older Node started outside a checkout says in one line what skiff needs',
    async () => {
      // bin/run.js alone, without the checkout's node_modules: nothing to re-run it on.
      const dir = scratch();
      fs.mkdirSync(path.join(dir, 'bin'));
      fs.copyFileSync(BIN, path.join(dir, 'bin/run.js'));
      fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
      const result = spawnSync(OLD_NODE!, [path.join(dir, 'bin/run.js'), 'pull', 'alpine'], {
        encoding: 'utf8',
      });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(
        /^skiff: needs Node >= 22\.22 \(this is v\d+\.\d+\.\d+\); run it as 'npx skiff …' inside the checkout, which brings Node 24\n$/,
      );
    },
  );

  it.skipIf(!OLD_NODE || !fs.existsSync(OWN_NODE))(
    "an older Node started on the checkout's bin/run.js (as an npm-linked skiff is) runs skiff on the checkout's Node",
    async () => {
      const own = spawnSync(OWN_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
      const { stdout } = await execFileAsync(OLD_NODE!, [BIN, 'version', '--json'], { cwd: scratch() });
      expect(`v${JSON.parse(stdout).node}`).toBe(own);
    },
  );

  it("keeps Node's compile cache in the user's cache directory", async () => {
    const xdg = scratch();
    const env = envWithout('NODE_COMPILE_CACHE', 'NODE_DISABLE_COMPILE_CACHE');
    await execFileAsync(process.execPath, [BIN, 'version'], { env: { ...env, XDG_CACHE_HOME: xdg } });
    expect(fs.readdirSync(path.join(xdg, 'skiff/compile-cache')).length).toBeGreaterThan(0);

    const home = scratch();
    delete env.XDG_CACHE_HOME;
    await execFileAsync(process.execPath, [BIN, 'version'], { env: { ...env, HOME: home } });
    expect(fs.readdirSync(path.join(home, '.cache/skiff/compile-cache')).length).toBeGreaterThan(0);
  });

  it('starts the commands that move layers on a heap sized for them (docs/memory.md), once, in the same process', async () => {
    // A module Node loads before skiff, in every start: it records the flags, process id and
    // glibc's mmap threshold as the environment sets it.
    const dir = scratch();
    const log = path.join(dir, 'starts.log');
    const probe = path.join(dir, 'probe.mjs');
    fs.writeFileSync(
      probe,
      `import fs from 'node:fs';\nfs.appendFileSync(${JSON.stringify(log)}, JSON.stringify([process.pid, process.execArgv, process.env.MALLOC_MMAP_THRESHOLD_ ?? null]) + '\\n');\n`,
    );
    const starts = (
      args: string[],
      env: NodeJS.ProcessEnv = envWithout('SKIFF_HEAP_FLAGS', 'NODE_OPTIONS'),
    ) => {
      fs.rmSync(log, { force: true });
      spawnSync(process.execPath, ['--import', probe, BIN, ...args], { env, cwd: dir });
      return fs
        .readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as [number, string[], string | null]);
    };
    const pull = ['pull', `oci:${path.join(dir, 'none')}:latest`, '--store', path.join(dir, 'store')];
    const [first, second, ...more] = starts(pull);
    expect(more).toEqual([]);
    expect(second?.[0]).toBe(first?.[0]);
    expect(second?.[1]).toEqual(['--max-semi-space-size=4', '--heap-growing-percent=50', '--import', probe]);
    // malloc's mmap threshold fixed at glibc's default, not raised by the first large free.
    expect([first?.[2], second?.[2]]).toEqual([null, '131072']);
    // Neither a command that holds no image nor a Node already given a young generation size.
    expect(starts(['version'])).toHaveLength(1);
    expect(
      starts(pull, { ...envWithout('SKIFF_HEAP_FLAGS'), NODE_OPTIONS: '--max-semi-space-size=8' }),
    ).toHaveLength(1);
  });
});

describe('an unknown command', () => {
  it('is a usage error on one line that names the word typed and the command meant', async () => {
    const result = await runCli(['pul', 'alpine']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe("skiff: 'pul' is not a skiff command; did you mean 'skiff pull'?\n");
  });

  it("names only the command word, and maps skopeo's words to skiff's", async () => {
    const result = await runCli(['copy', 'docker://127.0.0.1:5000/app:v1', 'oci:/tmp/app:v1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("skiff: 'copy' is not a skiff command; did you mean 'skiff mirror'?\n");
  });

  it('says where the commands are listed when nothing is close', async () => {
    const result = await runCli(['xyzzy']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("skiff: 'xyzzy' is not a skiff command; 'skiff help' lists them\n");
  });

  it('does not prompt on a terminal either', async () => {
    // script(1) gives skiff a pseudo-terminal; a "Did you mean …?" prompt would wait there.
    const command = [process.execPath, BIN, 'pul'].map((word) => `'${word}'`).join(' ');
    const result = spawnSync('script', ['-qec', command, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      input: '',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stdout.replace(/\r/g, '')).toBe(
      "skiff: 'pul' is not a skiff command; did you mean 'skiff pull'?\n",
    );
  });
});
