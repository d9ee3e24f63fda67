// bin/run.js's last resort: an error nothing caught is reported as a bug in one line, exit 1, the
// stack only when asked for. A bug is planted with a preloaded module (NODE_OPTIONS=--import) that
// waits until the CLI has installed its handlers, then throws or rejects outside any command.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';

let work: { dir: string; cleanup: () => void };
const plant = (kind: 'reject' | 'throw') => {
  const file = path.join(work.dir, `${kind}.mjs`);
  const bug =
    kind === 'reject'
      ? `Promise.reject(new Error('planted rejection\\nsecond line'));`
      : `setTimeout(() => { throw new Error('planted exception'); });`;
  fs.writeFileSync(
    file,
    `const timer = setInterval(() => {
       if (process.listenerCount('unhandledRejection') === 0) return;
       clearInterval(timer);
       ${bug}
     }, 1);\n`,
  );
  return { NODE_OPTIONS: `--import=${file}` };
};
// A pull of a port nothing listens on retries for a while: time for the planted bug to go off.
const args = () => ['pull', '--store', path.join(work.dir, 'store'), '127.0.0.1:1/nothing:here'];

beforeAll(() => {
  work = tempDir('skiff-internal-error-');
});
afterAll(() => work.cleanup());

describe('an error nothing caught', () => {
  it('an unhandled rejection → one line naming it a bug, exit 1, no stack', async () => {
    const result = await runCli(args(), plant('reject'));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'skiff: internal error (a bug; please report it): planted rejection; second line\n',
    );
  });

  it('an uncaught exception → the same one line, exit 1', async () => {
    const result = await runCli(args(), plant('throw'));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('skiff: internal error (a bug; please report it): planted exception\n');
  });

  it('with SKIFF_DEBUG=1 or --verbose, the stack follows the line', async () => {
    for (const [extraArgs, env] of [
      [[], { SKIFF_DEBUG: '1' }],
      [['--verbose'], {}],
    ] as const) {
      const result = await runCli([...args(), ...extraArgs], { ...plant('reject'), ...env });
      expect(result.code).toBe(1);
      const [line, ...stack] = result.stderr.split('\n');
      expect(line).toBe('skiff: internal error (a bug; please report it): planted rejection; second line');
      expect(stack.join('\n')).toMatch(/^\s+at .+reject\.mjs/m);
    }
  });
});
