// Issue 11, the command line: what a person sees on a terminal (read off a real pseudo-terminal),
// every error as one whole `skiff:` line with its exit code, and flags spelled as skopeo users
// type them.
import path from 'node:path';
import { http as msw, passthrough } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { FIXTURES, pushFixture } from '../harness/registry.js';
import { type StandIn, startStandIn } from '../harness/standin.js';
import { runInTerminal, type TerminalRun } from '../harness/terminal.js';

const registry = inject('registry');
const KEYS = path.resolve(FIXTURES, '../keys');
const BYTES = /\d+(\.\d)? (B|kB|MB)/;
const BAR = /[█░]/;

let work: { dir: string; cleanup: () => void };
let standin: StandIn;
let n = 0;
const fresh = (what = 'store') => path.join(work.dir, `${what}-${n++}`);
const terminals: TerminalRun[] = [];

beforeAll(async () => {
  work = tempDir('skiff-cli-');
  standin = await startStandIn(registry);
});
afterAll(async () => {
  for (const t of terminals) await t.close();
  await standin?.close();
  work?.cleanup();
});
beforeEach(() => standin.reset());

async function terminal(args: string[], env: Record<string, string> = {}): Promise<TerminalRun> {
  const t = await runInTerminal(args, env);
  terminals.push(t);
  return t;
}

/**
 * Holds every whole-blob GET of at least `minBytes` after its first half until `release()`: the
 * middle of a transfer, as long as the test needs to look at it.
 */
function holdBlobsHalfway(minBytes = 50_000) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  standin.use(({ next }) =>
    msw.get(/\/blobs\/sha256:/, async ({ request }) => {
      const upstream = await next(request);
      const bytes = new Uint8Array(await upstream.arrayBuffer());
      if (request.headers.has('range') || bytes.length < minBytes) {
        return new Response(bytes, { status: upstream.status, headers: upstream.headers });
      }
      const half = Math.floor(bytes.length / 2);
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(bytes.subarray(0, half));
          await released;
          controller.enqueue(bytes.subarray(half));
          controller.close();
        },
      });
      return new Response(body, { status: upstream.status, headers: upstream.headers });
    }),
  );
  standin.use(msw.all('*', () => passthrough()));
  return release;
}

describe('on a terminal', () => {
  it('pull: a header and a bar per layer with byte counts while it runs; only the result at the end', async () => {
    const release = holdBlobsHalfway();
    const ref = `${standin.host}/fixtures/gzip:latest`;
    const t = await terminal(['pull', ref], { SKIFF_STORE: fresh() });
    // Both layers have bytes in (each is held at its half).
    const middle = await t.waitFor(/ kB \/ [\d.]+ kB[\s\S]* kB \/ [\d.]+ kB/);
    release();
    expect(middle).toContain(`Pulling ${ref}`);
    const bars = middle.split('\n').filter((line) => BAR.test(line));
    expect(bars).toHaveLength(2);
    for (const line of bars)
      expect(line).toMatch(/^ sha256:[0-9a-f]{12} {2}full +\[[█░]+\] \d+(\.\d)? kB \/ \d+(\.\d)? kB/);
    expect(middle).not.toContain('{');

    const { code, screen } = await t.finished();
    expect(code, screen).toBe(0);
    expect(screen).not.toContain('{');
    expect(screen).not.toMatch(BAR);
    expect(screen).not.toContain('Pulling');
    const lines = screen.split('\n');
    expect(lines[0]).toBe(`Pulled ${ref} (linux/amd64, mode auto)`);
    expect(lines[1]).toMatch(/^LAYER +FORMAT +METHOD +REASONS +FETCHED +SIZE$/);
    expect(lines.slice(2, 4).every((line) => BYTES.test(line))).toBe(true);
    expect(lines.at(-1)).toMatch(/^fetched \d+(\.\d)? kB of \d+(\.\d)? kB \(0% reused\) in \d+\.\d s$/);
  });

  it('mirror: a bar per image while it runs; whole result lines, no bar left at the end', async () => {
    const release = holdBlobsHalfway();
    const src = `docker://${standin.host}/fixtures/gzip:latest`;
    const dst = `oci:${fresh('layout')}:latest`;
    const t = await terminal(['mirror', src, dst]);
    const middle = await t.waitFor(/ kB \/ [\d.]+ kB/);
    release();
    const bar = middle.split('\n').find((line) => BAR.test(line));
    expect(bar).toMatch(/^ \[[█░]+\] \d+(\.\d)? kB \/ \d+(\.\d)? kB +(docker:\/\/|…).* → oci:/);
    expect(middle).not.toContain('{');

    const { code, screen } = await t.finished();
    expect(code, screen).toBe(0);
    expect(screen).not.toContain('{');
    expect(screen).not.toMatch(BAR);
    // One result line, not cut at the terminal's width (wrapped by the terminal, joined again here).
    // An OCI layout takes referrers too, so the line says how many were looked for and copied.
    expect(screen).toMatch(
      /^mirrored docker:\/\/\S+ -> oci:\S+ sha256:[0-9a-f]{12} \(3 blobs copied, 0 skipped, 0 mounted, 0 referrers copied, \d+(\.\d)? kB, \d+\.\d s\)$/,
    );
  });
});

describe('errors: one whole skiff: line and the documented exit code', () => {
  const nope = `${registry}/fixtures/nope:latest`;
  const cases: Array<{ args: string[]; code: number; says: RegExp; never?: RegExp }> = [
    { args: ['pull'], code: 1, says: /^skiff: pull: missing argument REF \(image reference\)/ },
    {
      args: ['pull', '--jobs', 'abc', 'x'],
      code: 1,
      says: /^skiff: pull: --jobs: expected an integer but received: abc/,
    },
    {
      args: ['pull', '--mode', 'fast', 'x'],
      code: 1,
      says: /--mode=fast to be one of: auto, full, convert-only/,
    },
    { args: ['pull', '--bogus', 'x'], code: 1, says: /^skiff: pull: unknown flag --bogus/ },
    { args: ['pull', 'a', 'b'], code: 1, says: /^skiff: pull: unexpected argument "b"/ },
    { args: ['save', 'x'], code: 1, says: /^skiff: save: missing argument DESTINATION/ },
    { args: ['pull', '--decryption-key'], code: 1, says: /--decryption-key expects a value/ },
    {
      args: ['copy', `${registry}/fixtures/gzip:latest`, 'oci:/nonexistent/layout'],
      code: 1,
      says: /^skiff: 'copy' is not a skiff command; did you mean 'skiff mirror'\?/,
      never: /copy:|not found/,
    },
    {
      args: ['pul', 'alpine'],
      code: 1,
      says: /^skiff: 'pul' is not a skiff command; did you mean 'skiff pull'\?/,
    },
    { args: ['--bogus'], code: 1, says: /^skiff: unknown flag --bogus/ },
    {
      args: ['pull', 'htp://127.0.0.1:5000/app:v1'],
      code: 1,
      says: /unknown transport "htp:"/,
      never: /bad port/,
    },
    { args: ['mirror', 'docker://a/b:c'], code: 1, says: /^skiff: give SRC and DST, or --file/ },
    // mirror never opens the store: --store is not one of its flags.
    {
      args: ['mirror', '--store', 'x', 'a', 'b'],
      code: 1,
      says: /^skiff: mirror: unknown flag --store/,
    },
    {
      args: ['pull', '--insecure', '--tls-verify', 'x'],
      code: 1,
      says: /--insecure and --tls-verify contradict/,
    },
    {
      args: ['pull', '--creds', 'alice', `${registry}/fixtures/gzip:latest`],
      code: 1,
      says: /^skiff: --creds alice has no password and there is no terminal to ask on/,
    },
    // inspect names the image as pull does.
    {
      args: ['pull', nope],
      code: 2,
      says: new RegExp(`^skiff: ${nope}: manifest fixtures/nope:latest`),
    },
    {
      args: ['inspect', nope],
      code: 2,
      says: new RegExp(`^skiff: ${nope}: manifest fixtures/nope:latest`),
    },
  ];
  for (const { args, code, says, never } of cases) {
    it(`skiff ${args.join(' ')}`, async () => {
      const result = await runCli(args, { SKIFF_STORE: fresh() });
      expect(result.code, result.stderr).toBe(code);
      expect(result.stderr).toMatch(/^skiff: [^\n]+\n$/);
      expect(result.stderr).toMatch(says);
      expect(result.stderr).not.toMatch(/See more help|›/);
      if (never) expect(result.stderr).not.toMatch(never);
      expect(result.stdout).toBe('');
    });
  }
});

describe('help and version', () => {
  for (const args of [
    ['help', 'pull'],
    ['pull', '-h'],
    ['pull', '--help'],
  ]) {
    it(`skiff ${args.join(' ')} shows pull's help`, async () => {
      const result = await runCli(args);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/USAGE\n {2}\$ skiff pull REF/);
      expect(result.stdout).toContain('--decryption-key');
    });
  }
  it('skiff -h lists the commands', async () => {
    const result = await runCli(['-h']);
    expect(result.code, result.stderr).toBe(0);
    for (const command of ['pull', 'mirror', 'inspect', 'version'])
      expect(result.stdout).toContain(`  ${command}`);
  });
  it('skiff version prints what --version prints', async () => {
    const [version, flag] = await Promise.all([runCli(['version']), runCli(['--version'])]);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^skiff\/\d+\.\d+\.\d+ \S+ node-v\d+/);
    expect(version.stdout).toBe(flag.stdout);
  });
  it("mirror --help lists only mirror's flags, skopeo's spellings among them", async () => {
    const result = await runCli(['mirror', '--help']);
    expect(result.stdout).not.toContain('--store');
    for (const flag of [
      '--src-creds',
      '--dest-creds',
      '--[no-]src-tls-verify',
      '--[no-]dest-tls-verify',
      '--authfile',
    ])
      expect(result.stdout).toContain(flag);
  });
});

describe('flags as users type them', () => {
  it('--decryption-key takes one value and may be repeated before the reference', async () => {
    const result = await runCli(
      [
        'pull',
        '--json',
        '--decryption-key',
        `jwe:${KEYS}/wrong-rsa.pem`,
        '--decryption-key',
        `jwe:${KEYS}/rsa.pem`,
        `oci:${FIXTURES}/encrypted-rsa:latest`,
      ],
      { SKIFF_STORE: fresh() },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(
      JSON.parse(result.stdout).layers.every((l: { reasons: string[] }) => l.reasons.includes('encrypted')),
    ).toBe(true);
  });

  it("--tls-verify=false, skopeo's spelling, is taken as --insecure (not as an argument)", async () => {
    const result = await runCli(['pull', '--tls-verify=false', `${registry}/fixtures/zstd:latest`], {
      SKIFF_STORE: fresh(),
    });
    expect(result.code, result.stderr).toBe(0);
    const mirrored = await runCli([
      'mirror',
      '--src-tls-verify=false',
      '--dest-tls-verify=true',
      `docker://${registry}/fixtures/zstd:latest`,
      `oci:${fresh('layout')}:latest`,
    ]);
    expect(mirrored.code, mirrored.stderr).toBe(0);
  });
});

describe('--progress', () => {
  const fields = ['type', 'image', 'layer', 'method', 'phase', 'bytesDone', 'bytesTotal'];

  it('ndjson: pull prints one JSON event a line on stderr; stdout keeps the report', async () => {
    const ref = `${registry}/fixtures/gzip:latest`;
    const result = await runCli(['pull', '--progress=ndjson', '--json', ref], { SKIFF_STORE: fresh() });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    const events = result.stderr
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    for (const event of events) {
      expect(Object.keys(event).sort()).toEqual([...fields].sort());
      expect(event).toMatchObject({ type: 'progress', image: ref, method: 'full' });
    }
    for (const layer of report.layers) {
      const mine = events.filter((e) => e.layer === layer.digest);
      expect(mine[0]).toMatchObject({ phase: 'start', bytesDone: 0, bytesTotal: layer.size });
      expect(mine.at(-1)).toMatchObject({ phase: 'done', bytesDone: layer.bytesFetched });
    }
  });

  it('ndjson: a partial pull counts its TOC as done, so the last event and the report agree', async () => {
    await pushFixture(registry, 'demo-v1', 'cli/app:v1');
    await pushFixture(registry, 'demo-v2', 'cli/app:v2');
    const store = fresh();
    const v1 = await runCli(['pull', '--progress=none', `${registry}/cli/app:v1`], { SKIFF_STORE: store });
    expect(v1.code, v1.stderr).toBe(0);
    const v2 = await runCli(['pull', '--progress=ndjson', '--json', `${registry}/cli/app:v2`], {
      SKIFF_STORE: store,
    });
    expect(v2.code, v2.stderr).toBe(0);
    const [layer] = JSON.parse(v2.stdout).layers;
    expect(layer.method).toBe('partial');
    const events = v2.stderr
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events[0]).toMatchObject({ phase: 'start', method: 'partial', bytesTotal: layer.bytesFetched });
    expect(events.at(-1)).toMatchObject({
      phase: 'done',
      bytesDone: layer.bytesFetched,
      bytesTotal: layer.bytesFetched,
    });
  });

  it('ndjson: mirror reports each image', async () => {
    const result = await runCli([
      'mirror',
      '--progress',
      'ndjson',
      `docker://${registry}/fixtures/gzip:latest`,
      `oci:${fresh('layout')}:latest`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const events = result.stderr
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events[0]).toMatchObject({ phase: 'start', layer: null, method: 'copy', bytesDone: 0 });
    const last = events.at(-1);
    expect(last.phase).toBe('done');
    expect(last.bytesDone).toBeGreaterThan(0);
    expect(last.bytesDone).toBe(last.bytesTotal);
  });

  it('plain (the default off a terminal): throttled lines on stderr, none for a pull quicker than the interval', async () => {
    const ref = `${registry}/fixtures/gzip:latest`;
    const every = await runCli(['pull', ref], { SKIFF_STORE: fresh(), SKIFF_PROGRESS_INTERVAL: '0' });
    expect(every.code, every.stderr).toBe(0);
    const lines = every.stderr.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines)
      expect(line).toMatch(
        new RegExp(
          `^skiff: pulling ${ref}: layer sha256:[0-9a-f]{12} \\(full\\): (\\d+(\\.\\d)? kB / \\d+(\\.\\d)? kB \\(\\d+%\\)|done, \\d+(\\.\\d)? kB)$`,
        ),
      );
    const quiet = await runCli(['pull', ref], { SKIFF_STORE: fresh(), SKIFF_PROGRESS_INTERVAL: '3600' });
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
  });
});

describe('--creds USER on a terminal', () => {
  it('asks for the password without echoing it', async () => {
    const PASSWORD = 'pr0mpted-s3cret';
    standin.use(
      msw.all('*/v2/*', ({ request }) =>
        request.headers.get('authorization') ===
        `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`
          ? passthrough()
          : new Response(null, { status: 401, headers: { 'www-authenticate': 'Basic realm="skiff-test"' } }),
      ),
    );
    const t = await terminal(['pull', '--creds', 'alice', `${standin.host}/fixtures/zstd:latest`], {
      SKIFF_STORE: fresh(),
    });
    await t.waitFor(/Password for alice \(--creds\):/);
    await t.type(PASSWORD, true);
    const { code, screen } = await t.finished();
    expect(code, screen).toBe(0);
    expect(screen).not.toContain(PASSWORD);
    expect(screen).toContain('Pulled');
  });
});
