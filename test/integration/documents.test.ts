// Issue 11, item 12: inspect --raw / --config print the documents' bytes exactly as served;
// list-tags lists every tag, following the registry's pages; save says what it writes, and writes
// that; skiff --help says what skiff does with eStargz.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { http as mswHttp } from 'msw';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { FIXTURES, pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';
import { type Fault, type StandIn, startStandIn } from '../harness/standin.js';

const registry = inject('registry');
const MULTI = `${registry}/fixtures/multi:latest`;
const LAYOUT = path.join(FIXTURES, 'multi');

const blob = (digest: string) => fs.readFileSync(path.join(LAYOUT, 'blobs/sha256', digest.slice(7)));
const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The fixture's own documents: the index, and the arm64 manifest and config it names. */
const indexDigest: string = JSON.parse(fs.readFileSync(path.join(LAYOUT, 'index.json'), 'utf8')).manifests[0]
  .digest;
const armDescriptor = JSON.parse(blob(indexDigest).toString()).manifests.find(
  (m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64',
);
const armManifest = blob(armDescriptor.digest);
const armConfig = blob(JSON.parse(armManifest.toString()).config.digest);

const work = tempDir('skiff-documents-');
afterAll(() => work.cleanup());

/** Runs skiff with stdout kept as bytes' text (the fixtures' documents are ASCII). */
async function bytesOf(...args: string[]): Promise<Buffer> {
  const result = await runCli(args);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.code, args.join(' ')).toBe(0);
  return Buffer.from(result.stdout, 'latin1');
}

describe('inspect --raw and --config', () => {
  it('at the source: the index as served, a platform’s manifest, and its config, byte for byte', async () => {
    const store = ['--store', path.join(work.dir, 'none')];
    expect(digestOf(await bytesOf('inspect', '--raw', MULTI, ...store))).toBe(indexDigest);
    expect(await bytesOf('inspect', '--raw', MULTI, '--platform', 'linux/arm64', ...store)).toEqual(
      armManifest,
    );
    expect(await bytesOf('inspect', '--config', MULTI, '--platform', 'linux/arm64', ...store)).toEqual(
      armConfig,
    );
  });

  it('in the store: the manifest the image was pulled through, and its config', async () => {
    const store = ['--store', path.join(work.dir, 'store')];
    expect((await runCli(['pull', MULTI, '--platform', 'linux/arm64', ...store])).code).toBe(0);
    // The store answers (the source would serve the index for --raw without --platform).
    expect(await bytesOf('inspect', '--raw', MULTI, ...store)).toEqual(armManifest);
    expect(await bytesOf('inspect', '--config', MULTI, ...store)).toEqual(armConfig);
  });

  it('--raw and --config together are refused', async () => {
    const result = await runCli(['inspect', '--raw', '--config', MULTI]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('skiff: give --raw or --config, not both\n');
  });
});

describe('list-tags', () => {
  const TAGS = ['1.0', '1.1', '2.0', 'latest', 'v3'];
  let own: RunningRegistry;
  let standin: StandIn;
  beforeAll(async () => {
    own = await startRegistry();
    for (const tag of TAGS) await pushFixture(own.host, 'gzip', `org/app:${tag}`);
    standin = await startStandIn(own.host);
  });
  afterAll(async () => {
    await standin?.close();
    await own?.stop();
  });

  /** Serves the tag list two at a time, as registries paginate: the first Link absolute, the rest relative. */
  const paged: Fault = (context) =>
    mswHttp.get(/\/v2\/(.+)\/tags\/list$/, async ({ request }) => {
      const url = new URL(request.url);
      const whole = await context.next(
        new Request(`${url.origin}${url.pathname}`, { headers: request.headers }),
      );
      const { name, tags } = (await whole.json()) as { name: string; tags: string[] };
      const last = url.searchParams.get('last');
      const rest = tags.sort().filter((t) => last === null || t > last);
      const page = rest.slice(0, 2);
      const headers = new Headers({ 'content-type': 'application/json' });
      if (rest.length > page.length) {
        const next = `/v2/${name}/tags/list?n=2&last=${page.at(-1)}`;
        headers.set('link', `<${last === null ? `${url.origin}${next}` : next}>; rel="next"`);
      }
      return new Response(JSON.stringify({ name, tags: page }), { status: 200, headers });
    });

  it('lists every tag of a real registry, one a line, and as JSON', async () => {
    const listed = await runCli(['list-tags', `docker://${own.host}/org/app`]);
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toBe(TAGS.map((t) => `${t}\n`).join(''));
    const json = await runCli(['list-tags', '--json', `${own.host}/org/app`]);
    expect(JSON.parse(json.stdout)).toEqual({ repository: `docker://${own.host}/org/app`, tags: TAGS });
  });

  it('follows the Link header through every page', async () => {
    standin.reset();
    standin.use(paged);
    const listed = await runCli(['list-tags', `docker://${standin.host}/org/app`]);
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toBe(TAGS.map((t) => `${t}\n`).join(''));
    expect(standin.log.filter((r) => r.path.includes('/tags/list'))).toHaveLength(3);
    expect(standin.errors).toEqual([]);
  });

  it('refuses a reference with a tag, and says a missing repository is not found', async () => {
    const tagged = await runCli(['list-tags', `docker://${own.host}/org/app:1.0`]);
    expect(tagged.code).toBe(1);
    expect(tagged.stderr).toMatch(/^skiff: .*names a tag or digest; list-tags takes a repository\n$/);
    const dir = await runCli(['list-tags', `dir:${work.dir}`]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toBe(
      'skiff: dir: sources have no tags (only docker:// repositories and oci: layouts do)\n',
    );
    const layout = await runCli(['list-tags', '--json', `oci:${LAYOUT}`]);
    expect(JSON.parse(layout.stdout)).toEqual({ repository: `oci:${LAYOUT}`, tags: ['latest'] });
    const missing = await runCli(['list-tags', `docker://${own.host}/org/nothing`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')).toHaveLength(2);
  });
});

describe('what save writes', () => {
  it('uncompressed layers named by their DiffIDs, the source’s config, a new manifest; --help says so', async () => {
    const store = ['--store', path.join(work.dir, 'save-store')];
    const pulled = JSON.parse(
      (await runCli(['pull', MULTI, '--platform', 'linux/arm64', '--json', ...store])).stdout,
    );
    const layout = path.join(work.dir, 'saved');
    const saved = JSON.parse((await runCli(['save', MULTI, `oci:${layout}`, '--json', ...store])).stdout);
    const manifest = JSON.parse(
      fs.readFileSync(path.join(layout, 'blobs/sha256', saved.manifestDigest.slice(7)), 'utf8'),
    );
    const config = JSON.parse(armConfig.toString());
    expect(manifest.config.digest).toBe(pulled.configDigest);
    expect(manifest.layers).toEqual(
      config.rootfs.diff_ids.map((diffID: string) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: diffID,
        size: expect.any(Number),
      })),
    );
    expect(saved.manifestDigest).not.toBe(armDescriptor.digest);

    const help = (await runCli(['save', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('each layer as an uncompressed tar');
    expect(help).toContain("The manifest digest therefore differs from the source's");
    expect(help).toContain('The config digest (the image ID) is the source');
  });
});

describe('what skiff says it does', () => {
  it('skiff --help and package.json: eStargz is pulled whole, and why; only zstd:chunked partially', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8'));
    const help = (await runCli(['--help'])).stdout.replace(/\s+/g, ' ');
    for (const text of [pkg.description as string, help]) {
      expect(text).toContain('zstd:chunked layers partially');
      expect(text).toContain('eStargz is recognised but pulled whole, since without a tar-split');
      expect(text).not.toMatch(/eStargz layers partially|and eStargz layers partially/);
    }
  });
});
