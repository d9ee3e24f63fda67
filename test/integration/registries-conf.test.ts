// registries.conf against real registries: two docker-registry instances, one the primary and one
// a mirror, each behind a counting proxy so the test sees which one was asked for what. Mirrors
// are tried in order, then the primary; the name the image is stored under is the one asked for;
// pull-from-mirror, blocked registries and aliases; and a zstd:chunked partial pull whose v1 came
// from the primary and whose v2's ranges are served by the mirror.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushChunkedPair } from '../harness/chunked-pair.js';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import { type FaultProxy, startFaultProxy } from '../harness/fault-proxy.js';
import {
  fixtureRef,
  freePort,
  type RunningRegistry,
  skopeoCopy,
  startRegistry,
} from '../harness/registry.js';

let primary: RunningRegistry;
let mirror: RunningRegistry;
let primaryProxy: CountingProxy;
let mirrorProxy: CountingProxy;
let work: { dir: string; cleanup: () => void };
let deadHost: string;
let appDigest: string;

beforeAll(async () => {
  work = tempDir('skiff-regconf-');
  [primary, mirror] = await Promise.all([startRegistry(), startRegistry()]);
  [primaryProxy, mirrorProxy] = await Promise.all([
    startCountingProxy(primary.host),
    startCountingProxy(mirror.host),
  ]);
  deadHost = `127.0.0.1:${await freePort()}`;
  // The same image on both: as app:v1 on the primary, under cache/ on the mirror.
  await skopeoCopy(fixtureRef('gzip'), `docker://${primary.host}/team/app:v1`, ['--preserve-digests']);
  await skopeoCopy(`docker://${primary.host}/team/app:v1`, `docker://${mirror.host}/cache/team/app:v1`, [
    '--preserve-digests',
  ]);
  const inspected = await runCli(['inspect', '--json', `${primary.host}/team/app:v1`]);
  appDigest = JSON.parse(inspected.stdout).manifestDigest;
  // A zstd:chunked v1 and v2 on the primary; only v2 on the mirror, with the same digests.
  await pushChunkedPair(primary.host, 'team/chunked', work.dir);
  await skopeoCopy(
    `docker://${primary.host}/team/chunked:v2`,
    `docker://${mirror.host}/cache/team/chunked:v2`,
    ['--preserve-digests'],
    '/opt/skopeo-modern/skopeo',
  );
});
afterAll(async () => {
  await Promise.all([primaryProxy?.stop(), mirrorProxy?.stop()]);
  await Promise.all([primary?.stop(), mirror?.stop()]);
  work?.cleanup();
});

/** A registries.conf in the work directory; its path. */
function conf(name: string, text: string): string {
  const file = path.join(work.dir, `${name}.conf`);
  fs.writeFileSync(file, text);
  return file;
}

/** The primary's location is its counting proxy; `prefix` is what users write. */
function mirrored(mirrorLocation: string, extra = ''): string {
  return `
[[registry]]
prefix = "${primaryProxy.host}/team"
location = "${primaryProxy.host}/team"

[[registry.mirror]]
location = "${mirrorLocation}/cache/team"
${extra}
`;
}

function freshStore(): string {
  return fs.mkdtempSync(path.join(work.dir, 'store-'));
}

async function pull(store: string, ref: string, confFile: string, ...flags: string[]) {
  const result = await runCli(
    ['pull', '--json', '--retry-times', '0', '--registries-conf', confFile, ...flags, ref],
    { SKIFF_STORE: store },
  );
  return { ...result, report: result.code === 0 ? JSON.parse(result.stdout) : undefined };
}

async function storedNames(store: string): Promise<string[]> {
  const images = JSON.parse((await runCli(['images', '--json'], { SKIFF_STORE: store })).stdout);
  return images.flatMap((image: { names: string[] }) => image.names).sort();
}

function reset(): void {
  primaryProxy.reset();
  mirrorProxy.reset();
}

/** This machine's first address that is not loopback (skiff allows plain HTTP to loopback anyway). */
const outsideAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i && !i.internal && i.family === 'IPv4')?.address;

/** A TCP forwarder on `address` to a loopback registry: a registry that is not on loopback. */
async function forwarder(address: string, target: string): Promise<{ host: string; close(): Promise<void> }> {
  const [targetHost, targetPort] = target.split(':');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const upstream = net.connect(Number(targetPort), targetHost);
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return {
    host: `${address}:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('mirrors from registries.conf', () => {
  it('pulls from the mirror when it has the image; the primary is not asked; the name is the one asked for', async () => {
    reset();
    const store = freshStore();
    const result = await pull(
      store,
      `${primaryProxy.host}/team/app:v1`,
      conf('mirror-up', mirrored(mirrorProxy.host)),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.report.endpoints).toEqual([
      { outcome: 'served', endpoint: `${mirrorProxy.host}/cache/team/app`, mirror: true, what: 'manifest' },
    ]);
    expect(mirrorProxy.blobGets().length).toBeGreaterThan(0);
    expect(primaryProxy.requests).toEqual([]);
    expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/app:v1`]);
  });

  it('falls back to the primary when the mirror is down, and says so on stderr and in the report', async () => {
    reset();
    const store = freshStore();
    const result = await pull(
      store,
      `${primaryProxy.host}/team/app:v1`,
      conf('mirror-down', mirrored(deadHost)),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(
      new RegExp(
        `^skiff: ${primaryProxy.host}/team/app:v1: mirror ${deadHost}/cache/team/app failed for manifest \\(cannot reach registry ${deadHost}: .*\\); trying ${primaryProxy.host}/team/app\\n$`,
      ),
    );
    expect(result.report.endpoints).toEqual([
      {
        outcome: 'failed',
        endpoint: `${deadHost}/cache/team/app`,
        mirror: true,
        what: 'manifest',
        error: expect.stringContaining(`cannot reach registry ${deadHost}`),
        next: `${primaryProxy.host}/team/app`,
      },
      { outcome: 'served', endpoint: `${primaryProxy.host}/team/app`, mirror: false, what: 'manifest' },
    ]);
    expect(primaryProxy.blobGets().length).toBeGreaterThan(0);
    expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/app:v1`]);
  });

  it('a mirror without the image: not found there, served by the primary', async () => {
    reset();
    const empty = `
[[registry]]
location = "${primaryProxy.host}/team"
[[registry.mirror]]
location = "${mirrorProxy.host}/nothing-here"
`;
    const result = await pull(freshStore(), `${primaryProxy.host}/team/app:v1`, conf('mirror-empty', empty));
    expect(result.code, result.stderr).toBe(0);
    expect(result.report.endpoints[0]).toMatchObject({
      outcome: 'failed',
      what: 'manifest',
      error: expect.stringContaining('not found'),
    });
    expect(mirrorProxy.blobGets()).toEqual([]);
  });

  it('a digest-only mirror is not asked for a tag, and serves the digest', async () => {
    const digestOnly = conf('digest-only', mirrored(mirrorProxy.host, 'pull-from-mirror = "digest-only"'));
    reset();
    const byTag = await pull(freshStore(), `${primaryProxy.host}/team/app:v1`, digestOnly);
    expect(byTag.code, byTag.stderr).toBe(0);
    expect(mirrorProxy.requests).toEqual([]);
    expect(byTag.report.endpoints).toEqual([
      { outcome: 'served', endpoint: `${primaryProxy.host}/team/app`, mirror: false, what: 'manifest' },
    ]);
    reset();
    const store = freshStore();
    const byDigest = await pull(store, `${primaryProxy.host}/team/app@${appDigest}`, digestOnly);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    expect(byDigest.report.endpoints).toEqual([
      { outcome: 'served', endpoint: `${mirrorProxy.host}/cache/team/app`, mirror: true, what: 'manifest' },
    ]);
    expect(primaryProxy.requests).toEqual([]);
    expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/app@${appDigest}`]);
  });

  it('refuses a blocked registry before any request (exit 2, one line naming the file)', async () => {
    const file = conf('blocked', `[[registry]]\nprefix = "${primaryProxy.host}"\nblocked = true\n`);
    reset();
    const store = freshStore();
    const result = await pull(store, `${primaryProxy.host}/team/app:v1`, file);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `skiff: registry ${primaryProxy.host} is blocked in ${file}: skiff does not pull ${primaryProxy.host}/team/app:v1\n`,
    );
    expect(primaryProxy.requests).toEqual([]);
    expect(await storedNames(store)).toEqual([]);
  });

  it('resolves a short name by its alias, and stores the aliased name', async () => {
    const file = conf('alias', `[aliases]\n"skiff-test-app" = "${primaryProxy.host}/team/app"\n`);
    const store = freshStore();
    const result = await pull(store, 'skiff-test-app:v1', file);
    expect(result.code, result.stderr).toBe(0);
    expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/app:v1`]);
  });

  it('a short name tries the search registries in order (permissive), and is refused when enforcing', async () => {
    const search = `unqualified-search-registries = ["${deadHost}", "${primaryProxy.host}"]\n`;
    const store = freshStore();
    const permissive = await pull(store, 'team/app:v1', conf('permissive', search));
    expect(permissive.code, permissive.stderr).toBe(0);
    expect(permissive.stderr).toMatch(
      new RegExp(
        `^skiff: ${deadHost}/team/app:v1: cannot reach registry ${deadHost}.*; trying ${primaryProxy.host}/team/app:v1\\n$`,
      ),
    );
    expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/app:v1`]);
    reset();
    const enforcing = await pull(
      freshStore(),
      'team/app:v1',
      conf('enforcing', `${search}short-name-mode = "enforcing"\n`),
    );
    expect(enforcing.code).toBe(1);
    expect(enforcing.stderr).toMatch(
      /^skiff: short name "team\/app:v1" is ambiguous .*skiff does not prompt.*\n$/,
    );
    expect(primaryProxy.requests).toEqual([]);
  });

  it('a bad registries.conf is one line naming the file and the key (exit 1)', async () => {
    const file = conf(
      'bad',
      `[[registry]]\nlocation = "${primaryProxy.host}"\n[[registry.mirror]]\nlocation = "x"\npull-from-mirror = "never"\n`,
    );
    reset();
    const result = await pull(freshStore(), `${primaryProxy.host}/team/app:v1`, file);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^skiff: registries configuration ${file}: registry\\[0\\]\\.mirror\\[0\\]\\.pull-from-mirror: .*\\n$`,
      ),
    );
    expect(primaryProxy.requests).toEqual([]);
  });

  it('pulls a zstd:chunked v2 partially from the mirror, over a v1 that came from the primary', async () => {
    const store = freshStore();
    const plain = conf('none', '');
    const v1 = await pull(store, `${primaryProxy.host}/team/chunked:v1`, plain);
    expect(v1.code, v1.stderr).toBe(0);
    reset();
    const v2 = await pull(
      store,
      `${primaryProxy.host}/team/chunked:v2`,
      conf('chunked', mirrored(mirrorProxy.host)),
    );
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.report.layers.map((l: { method: string }) => l.method)).toEqual(['partial']);
    expect(v2.report.endpoints).toEqual([
      {
        outcome: 'served',
        endpoint: `${mirrorProxy.host}/cache/team/chunked`,
        mirror: true,
        what: 'manifest',
      },
    ]);
    // Every range came from the mirror; the primary was not asked at all.
    const ranged = mirrorProxy.blobGets().filter((r) => r.status === 206);
    expect(ranged.length).toBeGreaterThan(0);
    expect(primaryProxy.requests).toEqual([]);
    const layer = v2.report.layers[0];
    expect(layer.bytesFetched).toBeLessThan(layer.size);
    expect(await storedNames(store)).toEqual([
      `${primaryProxy.host}/team/chunked:v1`,
      `${primaryProxy.host}/team/chunked:v2`,
    ]);
  });

  it.skipIf(!outsideAddress)(
    'insecure = true lets a registry off loopback speak plain HTTP, a mirror too',
    async () => {
      const outside = await forwarder(outsideAddress!, primary.host);
      const outsideMirror = await forwarder(outsideAddress!, mirror.host);
      try {
        const ref = `${outside.host}/team/app:v1`;
        const refused = await pull(freshStore(), ref, conf('secure', ''));
        expect(refused.code, refused.stderr).not.toBe(0);
        const file = conf('insecure', `[[registry]]\nlocation = "${outside.host}"\ninsecure = true\n`);
        const allowed = await pull(freshStore(), ref, file);
        expect(allowed.code, allowed.stderr).toBe(0);

        const viaMirror = (insecure: boolean) =>
          conf(
            `insecure-mirror-${insecure}`,
            `[[registry]]\nlocation = "${primaryProxy.host}/team"\n[[registry.mirror]]\nlocation = "${outsideMirror.host}/cache/team"\ninsecure = ${insecure}\n`,
          );
        const served = await pull(freshStore(), `${primaryProxy.host}/team/app:v1`, viaMirror(true));
        expect(served.code, served.stderr).toBe(0);
        expect(served.report.endpoints).toEqual([
          {
            outcome: 'served',
            endpoint: `${outsideMirror.host}/cache/team/app`,
            mirror: true,
            what: 'manifest',
          },
        ]);
        const fellBack = await pull(freshStore(), `${primaryProxy.host}/team/app:v1`, viaMirror(false));
        expect(fellBack.code, fellBack.stderr).toBe(0);
        expect(fellBack.report.endpoints.map((e: { outcome: string }) => e.outcome)).toEqual([
          'failed',
          'served',
        ]);
      } finally {
        await Promise.all([outside.close(), outsideMirror.close()]);
      }
    },
  );

  it('a layer the mirror lacks is read from the primary: TOC and ranges, each chunk still verified', async () => {
    // The same v2 in a repository of its own on both, then its layer deleted from the mirror.
    await skopeoCopy(`docker://${primary.host}/team/chunked:v2`, `docker://${primary.host}/team/lost:v2`, [
      '--preserve-digests',
    ]);
    await skopeoCopy(`docker://${primary.host}/team/lost:v2`, `docker://${mirror.host}/cache/team/lost:v2`, [
      '--preserve-digests',
    ]);
    const manifest = (await (
      await fetch(`http://${mirror.host}/v2/cache/team/lost/manifests/v2`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: Array<{ digest: string }> };
    const layer = manifest.layers[0]!.digest;
    const deleted = await fetch(`http://${mirror.host}/v2/cache/team/lost/blobs/${layer}`, {
      method: 'DELETE',
    });
    expect(deleted.status).toBe(202);

    const store = freshStore();
    const v1 = await pull(store, `${primaryProxy.host}/team/chunked:v1`, conf('none', ''));
    expect(v1.code, v1.stderr).toBe(0);
    reset();
    const v2 = await pull(
      store,
      `${primaryProxy.host}/team/lost:v2`,
      conf('lost', mirrored(mirrorProxy.host)),
    );
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.report.layers.map((l: { method: string }) => l.method)).toEqual(['partial']);
    expect(v2.report.endpoints).toEqual([
      { outcome: 'served', endpoint: `${mirrorProxy.host}/cache/team/lost`, mirror: true, what: 'manifest' },
      expect.objectContaining({
        outcome: 'failed',
        endpoint: `${mirrorProxy.host}/cache/team/lost`,
        what: expect.stringContaining(layer),
        next: `${primaryProxy.host}/team/lost`,
      }),
      {
        outcome: 'served',
        endpoint: `${primaryProxy.host}/team/lost`,
        mirror: false,
        what: expect.stringContaining(layer),
      },
    ]);
    expect(v2.stderr).toContain(`mirror ${mirrorProxy.host}/cache/team/lost failed for`);
    // The manifest from the mirror; every range of the layer from the primary.
    expect(primaryProxy.requests.some((r) => r.path.includes('/manifests/'))).toBe(false);
    expect(primaryProxy.blobGets().filter((r) => r.status === 206).length).toBeGreaterThan(0);
    expect(mirrorProxy.blobGets().filter((r) => r.status === 206)).toEqual([]);
  });

  it('mirror --json names the endpoints of each image, and the human line says a mirror served', async () => {
    const run = (confFile: string, destination: string, ...flags: string[]) =>
      runCli([
        'mirror',
        '--retry-times',
        '0',
        // Referrers are looked up where the reference names (src/mirror/referrers.ts), not at mirrors.
        '--no-referrers',
        '--registries-conf',
        confFile,
        ...flags,
        `docker://${primaryProxy.host}/team/app:v1`,
        `docker://${mirror.host}/${destination}`,
      ]);
    reset();
    const served = await run(conf('mirror-json-up', mirrored(mirrorProxy.host)), 'out/up:v1', '--json');
    expect(served.code, served.stderr).toBe(0);
    const line = JSON.parse(served.stdout.trim().split('\n')[0]!);
    expect(line.endpoints).toEqual(
      ['manifest (HEAD)', 'manifest'].map((what) => ({
        outcome: 'served',
        endpoint: `${mirrorProxy.host}/cache/team/app`,
        mirror: true,
        what,
      })),
    );
    expect(primaryProxy.requests).toEqual([]);
    // A re-run is up to date by the source's HEAD, which the mirror served.
    const again = await run(conf('mirror-json-up', mirrored(mirrorProxy.host)), 'out/up:v1', '--json');
    expect(again.code, again.stderr).toBe(0);
    const upToDate = JSON.parse(again.stdout.trim().split('\n')[0]!);
    expect(upToDate.upToDate).toBe(true);
    expect(upToDate.endpoints).toEqual([
      {
        outcome: 'served',
        endpoint: `${mirrorProxy.host}/cache/team/app`,
        mirror: true,
        what: 'manifest (HEAD)',
      },
    ]);

    const down = await run(conf('mirror-json-down', mirrored(deadHost)), 'out/down:v1', '--json');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toContain(`mirror ${deadHost}/cache/team/app failed for manifest (HEAD)`);
    expect(JSON.parse(down.stdout.trim().split('\n')[0]!).endpoints).toEqual([
      {
        outcome: 'failed',
        endpoint: `${deadHost}/cache/team/app`,
        mirror: true,
        what: 'manifest (HEAD)',
        error: expect.stringContaining(`cannot reach registry ${deadHost}`),
        next: `${primaryProxy.host}/team/app`,
      },
      {
        outcome: 'served',
        endpoint: `${primaryProxy.host}/team/app`,
        mirror: false,
        what: 'manifest (HEAD)',
      },
      { outcome: 'served', endpoint: `${primaryProxy.host}/team/app`, mirror: false, what: 'manifest' },
    ]);

    const human = await run(conf('mirror-human-up', mirrored(mirrorProxy.host)), 'out/human:v1');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(
      `  note: manifest (HEAD), manifest from mirror ${mirrorProxy.host}/cache/team/app (registries.conf), not the primary\n`,
    );
    const humanDown = await run(conf('mirror-human-down', mirrored(deadHost)), 'out/human-down:v1');
    expect(humanDown.code, humanDown.stderr).toBe(0);
    expect(humanDown.stdout).toContain(
      `  note: manifest (HEAD), manifest from ${primaryProxy.host}/team/app after a mirror failed\n`,
    );
    const plain = await run(conf('mirror-plain', ''), 'out/plain:v1');
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain('note:');
  });

  describe('one layer from two sources: the TOC from the mirror, the missing chunks from the primary', () => {
    let faultyMirror: FaultProxy;
    let faultyPrimary: FaultProxy;
    let layer: string;
    beforeAll(async () => {
      [faultyMirror, faultyPrimary] = await Promise.all([
        startFaultProxy(mirror.host),
        startFaultProxy(primary.host),
      ]);
      const manifest = (await (
        await fetch(`http://${mirror.host}/v2/cache/team/chunked/manifests/v2`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).json()) as { layers: Array<{ digest: string }> };
      layer = manifest.layers[0]!.digest;
    });
    afterAll(async () => {
      await Promise.all([faultyMirror?.stop(), faultyPrimary?.stop()]);
    });

    /** The mirror answers the TOC's ranges (the first GET of the layer) and then `status` for the rest. */
    const mirrorFailsAfterToc = (status: number) => {
      faultyMirror.set({ digest: layer, on: 'range', skip: 1, mode: { kind: 'status', status } });
      faultyPrimary.set();
    };
    const confBoth = () =>
      conf(
        'two-sources',
        `[[registry]]\nlocation = "${faultyPrimary.host}/team"\n[[registry.mirror]]\nlocation = "${faultyMirror.host}/cache/team"\n`,
      );
    const pullV2 = async () => {
      const store = freshStore();
      const v1 = await pull(store, `${primaryProxy.host}/team/chunked:v1`, conf('none', ''));
      expect(v1.code, v1.stderr).toBe(0);
      return pull(store, `${faultyPrimary.host}/team/chunked:v2`, confBoth());
    };

    it.each([404, 500])(
      'the mirror answers %i for the chunks: they come from the primary, the pull stays partial',
      async (status) => {
        mirrorFailsAfterToc(status);
        const v2 = await pullV2();
        expect(v2.code, v2.stderr).toBe(0);
        const [only] = v2.report.layers;
        expect(only).toMatchObject({ method: 'partial' });
        expect(only.bytesFetched).toBeLessThan(only.size);
        const mirrorGets = faultyMirror.blobGets(layer);
        expect(mirrorGets[0]).toMatchObject({ status: 206, fault: undefined });
        expect(mirrorGets.slice(1).every((r) => r.status === status)).toBe(true);
        // The primary served the chunks only: ranges, never the TOC's (the mirror's one answer) nor the whole blob.
        const tocRange = mirrorGets[0]!.range!;
        const primaryGets = faultyPrimary.blobGets(layer);
        expect(primaryGets.length).toBeGreaterThan(0);
        expect(primaryGets.every((r) => r.range !== undefined && r.status === 206)).toBe(true);
        expect(primaryGets.some((r) => r.range!.includes(tocRange.slice('bytes='.length)))).toBe(false);
        expect(only.tocBytesFetched).toBeGreaterThan(0);
        expect(faultyPrimary.requests.some((r) => r.path.includes('/manifests/'))).toBe(false);
        expect(v2.report.endpoints).toEqual([
          {
            outcome: 'served',
            endpoint: `${faultyMirror.host}/cache/team/chunked`,
            mirror: true,
            what: 'manifest',
          },
          expect.objectContaining({
            outcome: 'failed',
            endpoint: `${faultyMirror.host}/cache/team/chunked`,
            what: `ranges of blob ${layer}`,
            next: `${faultyPrimary.host}/team/chunked`,
          }),
          {
            outcome: 'served',
            endpoint: `${faultyPrimary.host}/team/chunked`,
            mirror: false,
            what: `ranges of blob ${layer}`,
          },
        ]);
        expect(faultyMirror.errors).toEqual([]);
        expect(faultyPrimary.errors).toEqual([]);
      },
    );

    it('a chunk with a wrong digest from the primary is refused (exit 4), nothing stored', async () => {
      mirrorFailsAfterToc(404);
      faultyPrimary.set({ digest: layer, on: 'range', mode: { kind: 'flip' } });
      const store = freshStore();
      const v1 = await pull(store, `${primaryProxy.host}/team/chunked:v1`, conf('none', ''));
      expect(v1.code, v1.stderr).toBe(0);
      const v2 = await pull(store, `${faultyPrimary.host}/team/chunked:v2`, confBoth());
      expect(v2.code, v2.stderr).toBe(4);
      expect(await storedNames(store)).toEqual([`${primaryProxy.host}/team/chunked:v1`]);
      expect(faultyPrimary.blobGets(layer).some((r) => r.fault === 'flip')).toBe(true);
      // The flipped byte breaks the chunk's zstd frame, whose checksum refuses it before its digest is
      // taken; either way the wrong bytes from the second source are never written.
      expect(v2.stderr).toMatch(/: chunk of "[^"]+" at \d+ \(bytes \d+-\d+ of the blob\): /);
      expect(v2.stderr).toContain(layer.slice(0, 19));
    });
  });
});
