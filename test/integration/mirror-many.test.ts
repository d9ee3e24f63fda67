// Issue 15, many images in one run: what a `mirror --file` run asks of the registries (counted at
// proxies in front of both) and in which order it starts its items.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import { pushFixture, type RunningRegistry, startRegistry } from '../harness/registry.js';

let regA: RunningRegistry;
let regB: RunningRegistry;
/** Source registry, through its proxy. */
let A: CountingProxy;
/** Destination registry, through its proxy. */
let B: CountingProxy;
let work: string;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  [regA, regB] = await Promise.all([startRegistry(), startRegistry()]);
  cleanups.push(
    () => regA.stop(),
    () => regB.stop(),
  );
  [A, B] = await Promise.all([startCountingProxy(regA.host), startCountingProxy(regB.host)]);
  cleanups.push(
    () => A.stop(),
    () => B.stop(),
  );
  const temp = tempDir('skiff-mirror-many-');
  work = temp.dir;
  cleanups.push(temp.cleanup);
  // Two repositories: three tags of one image in the first (they share every blob), one in the other.
  for (const tag of ['1', '2', '3']) await pushFixture(regA.host, 'gzip', `many/shared:${tag}`);
  await pushFixture(regA.host, 'zstd', 'many/other:1');
  await pushFixture(regA.host, 'multi', 'many/multi:latest');
  // The same index beside a cosign tag of some other manifest: its platforms may have referrers.
  await pushFixture(regA.host, 'multi', 'many/signed:latest');
  await pushFixture(regA.host, 'gzip', `many/signed:sha256-${'0'.repeat(64)}.sig`);
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function writeList(name: string, lines: string[]): string {
  const file = path.join(work, name);
  fs.writeFileSync(file, `images:\n${lines.join('\n')}\n`);
  return file;
}

async function mirrorList(file: string, ...args: string[]) {
  const result = await runCli(['mirror', '--json', '--file', file, ...args]);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

const manifestRequests = (proxy: CountingProxy, method: string) =>
  proxy.requests.filter((r) => r.method === method && r.path.includes('/manifests/'));

describe('mirror --file, many images', () => {
  it('a first run learns by HEAD that the destination lacks each image: no manifest GET there', async () => {
    const list = writeList('first.yaml', [
      `  - source: docker://${A.host}/many/shared`,
      '    tags: ["1", "2"]',
      `    destination: docker://${B.host}/first/shared`,
      `  - source: docker://${A.host}/many/multi:latest`,
      '    all: true',
      `    destination: docker://${B.host}/first/multi:latest`,
    ]);
    A.reset();
    B.reset();
    await mirrorList(list, '--no-referrers');
    expect(manifestRequests(B, 'HEAD').map((r) => r.status)).toEqual([404, 404, 404]);
    expect(manifestRequests(B, 'GET')).toEqual([]);
    expect(manifestRequests(B, 'PUT').length).toBeGreaterThanOrEqual(3);

    // The re-run: HEADs alone at both ends, no blob moved, no manifest written.
    A.reset();
    B.reset();
    await mirrorList(list, '--no-referrers');
    expect(manifestRequests(A, 'GET')).toEqual([]);
    expect(manifestRequests(B, 'GET')).toEqual([]);
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
    expect(B.manifestPuts()).toEqual([]);
  });

  it('HEADs keep their connection: a re-run one image at a time opens a connection or two per registry, not one per HEAD', async () => {
    // undici closes the connection after a HEAD unless told not to; a re-run is almost only HEADs.
    const list = writeList('keepalive.yaml', [
      `  - source: docker://${A.host}/many/shared`,
      '    tags: ["1", "2", "3"]',
      `    destination: docker://${B.host}/keepalive/shared`,
      `  - source: docker://${A.host}/many/other:1`,
      `    destination: docker://${B.host}/keepalive/other:1`,
    ]);
    await mirrorList(list, '--no-referrers');
    A.reset();
    B.reset();
    await mirrorList(list, '--no-referrers', '--jobs', '1');
    expect(manifestRequests(A, 'HEAD')).toHaveLength(4);
    expect(manifestRequests(B, 'HEAD')).toHaveLength(4);
    // One connection, or two where undici's pool opens a second while the first is checked idle
    // after the /v2/ probe; without keep-alive, one per HEAD.
    expect(A.connections()).toBeLessThanOrEqual(2);
    expect(B.connections()).toBeLessThanOrEqual(2);
  });

  it('a re-run asks the source for no signature or referrer image by image', async () => {
    // Four images in two repositories, referrers carried (the default). Looking for cosign tags and
    // referrers costs one tag list per repository and one referrers probe per registry, not five
    // requests per image: the re-run asks each image's manifest by HEAD and nothing else per image.
    const list = writeList('rerun.yaml', [
      `  - source: docker://${A.host}/many/shared`,
      '    tags: ["1", "2", "3"]',
      `    destination: docker://${B.host}/rerun/shared`,
      `  - source: docker://${A.host}/many/other:1`,
      `    destination: docker://${B.host}/rerun/other:1`,
    ]);
    await mirrorList(list);
    A.reset();
    B.reset();
    await mirrorList(list);
    const asked = A.requests
      .map((r) => `${r.method} ${r.path.split('?')[0]}`)
      .filter((r) => !r.endsWith(' /v2/'));
    const perImage = ['shared/manifests/1', 'shared/manifests/2', 'shared/manifests/3', 'other/manifests/1'];
    expect(asked.filter((r) => r.includes('/manifests/')).sort()).toEqual(
      perImage.map((p) => `HEAD /v2/many/${p}`).sort(),
    );
    expect(asked.filter((r) => r.includes('/tags/list')).sort()).toEqual([
      'GET /v2/many/other/tags/list',
      'GET /v2/many/shared/tags/list',
    ]);
    // Debian's docker-registry has no referrers API: it says so (404) once, not once per image.
    expect(asked.filter((r) => r.includes('/referrers/'))).toHaveLength(1);
    expect(asked).toHaveLength(perImage.length + 2 + 1);
    expect(A.blobGets()).toEqual([]);
    expect(B.uploads()).toEqual([]);
    expect(B.manifestPuts()).toEqual([]);
  });

  it('carries the referrers of a multi-arch image without reading the index it wrote or found up to date', async () => {
    // Referrers carried (the default) for an index under two tags. The first run knows the index's
    // manifests from its own copy; the re-run, which only HEADs the index, learns from the source's
    // tag list (and its registry's missing referrers API) that no platform manifest has a referrer:
    // no manifest GET at either end, in either run.
    const list = writeList('multi.yaml', [
      `  - source: docker://${A.host}/many/multi:latest`,
      '    all: true',
      `    destination: docker://${B.host}/carry/multi:latest`,
      `  - source: docker://${A.host}/many/multi:latest`,
      '    all: true',
      `    destination: docker://${B.host}/carry/multi:stable`,
    ]);
    A.reset();
    B.reset();
    await mirrorList(list, '--jobs', '1');
    expect(manifestRequests(B, 'GET')).toEqual([]);
    A.reset();
    B.reset();
    const again = await mirrorList(list);
    expect(manifestRequests(A, 'GET')).toEqual([]);
    expect(manifestRequests(B, 'GET')).toEqual([]);
    expect(B.manifestPuts()).toEqual([]);
    const images = again.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'image');
    expect(images.map((i) => [i.upToDate, i.error])).toEqual([
      [true, null],
      [true, null],
    ]);
  });

  it('reads the manifests of an index once per run where the source may hold their referrers', async () => {
    // A cosign tag of another digest in the source repository: the platforms' referrers must be
    // looked for, so the index is read at the destination, once for its two tags.
    const list = writeList('signed.yaml', [
      `  - source: docker://${A.host}/many/signed:latest`,
      '    all: true',
      `    destination: docker://${B.host}/signed/multi:latest`,
      `  - source: docker://${A.host}/many/signed:latest`,
      '    all: true',
      `    destination: docker://${B.host}/signed/multi:stable`,
    ]);
    await mirrorList(list);
    A.reset();
    B.reset();
    await mirrorList(list, '--jobs', '1');
    expect(manifestRequests(A, 'GET')).toEqual([]);
    expect(manifestRequests(B, 'GET').map((r) => r.path.split('/manifests/')[1])).toEqual([
      expect.stringMatching(/^sha256:/),
    ]);
    // Each platform's manifest was looked for: by the source's tag list, not by a HEAD each.
    expect(manifestRequests(A, 'HEAD').map((r) => r.path)).toEqual([
      '/v2/many/signed/manifests/latest',
      '/v2/many/signed/manifests/latest',
    ]);
  });

  it('starts an item of an idle repository before another tag of a busy one', async () => {
    // Listed grouped by repository, as lists usually are; with two jobs the second to start is the
    // other repository's image, not the second tag sharing the first one's layers.
    const list = writeList('spread.yaml', [
      `  - source: docker://${A.host}/many/shared`,
      '    tags: ["1", "2", "3"]',
      `    destination: docker://${B.host}/spread/shared`,
      `  - source: docker://${A.host}/many/other:1`,
      `    destination: docker://${B.host}/spread/other:1`,
    ]);
    A.reset();
    const result = await mirrorList(list, '--jobs', '2', '--no-referrers');
    const started = manifestRequests(A, 'HEAD')
      .slice(0, 2)
      .map((r) => r.path)
      .sort();
    expect(started).toEqual(['/v2/many/other/manifests/1', '/v2/many/shared/manifests/1']);
    // Results are still reported for every item, in full.
    const images = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'image');
    expect(images.map((i) => i.source).sort()).toEqual(
      [
        `docker://${A.host}/many/other:1`,
        ...['1', '2', '3'].map((t) => `docker://${A.host}/many/shared:${t}`),
      ].sort(),
    );
    expect(images.every((i) => i.error === null)).toBe(true);
  });
});
