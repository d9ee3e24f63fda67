// Issue 11, items 9 and 11: commands that only read the store never create one, and a tag pulled
// for several platforms names one image per platform, chosen with --platform (default: the one
// this host runs, else the last pulled). Stores whose name files predate platforms still work.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';

const registry = inject('registry');
const MULTI = `${registry}/fixtures/multi:latest`;
const HOST = process.arch === 'arm64' ? 'linux/arm64/v8' : 'linux/amd64';

const work = tempDir('skiff-names-');
afterAll(() => work.cleanup());
let counter = 0;
function fresh(name: string): string {
  return path.join(work.dir, `${name}-${counter++}`);
}

async function skiff(args: string[], store: string) {
  return runCli([...args, '--store', store]);
}

async function skiffJson(args: string[], store: string) {
  const result = await skiff([...args, '--json'], store);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.code, args.join(' ')).toBe(0);
  return JSON.parse(result.stdout);
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
/** Every command that reads the store, with arguments that would otherwise make it work. */
const READERS: Array<[string, (dir: string) => string[]]> = [
  ['images', () => ['images']],
  ['inspect', () => ['inspect', DIGEST]],
  ['unpack', (dir) => ['unpack', 'app:1', path.join(dir, 'rootfs')]],
  ['save', (dir) => ['save', 'app:1', `oci:${path.join(dir, 'layout')}`]],
  ['rmi', () => ['rmi', 'app:1']],
  ['gc', () => ['gc']],
];

describe('read-only commands never create a store', () => {
  for (const [command, args] of READERS) {
    it(`${command} on an absent path says "no store at PATH", exits 1 and creates nothing`, async () => {
      const parent = fresh(command);
      fs.mkdirSync(parent);
      const store = path.join(parent, 'store');
      const result = await skiff(args(parent), store);
      expect(result.stderr).toBe(`skiff: no store at ${store}\n`);
      expect(result.code).toBe(1);
      expect(fs.readdirSync(parent)).toEqual([]);
    });

    it(`${command} on an empty directory leaves it empty`, async () => {
      const store = fresh(command);
      fs.mkdirSync(store);
      const result = await skiff(args(work.dir), store);
      expect(result.stderr).toBe(`skiff: no store at ${store}\n`);
      expect(result.code).toBe(1);
      expect(fs.readdirSync(store)).toEqual([]);
    });

    it(`${command} refuses a file as the store and leaves it alone`, async () => {
      const file = fresh(command);
      fs.writeFileSync(file, 'not a store\n');
      const result = await skiff(args(work.dir), file);
      expect(result.stderr).toBe(`skiff: ${file} is not a store (a file)\n`);
      expect(result.code).toBe(1);
      expect(fs.readFileSync(file, 'utf8')).toBe('not a store\n');
    });
  }

  it('inspect of a source works without a store, and still creates none', async () => {
    const parent = fresh('inspect-remote');
    fs.mkdirSync(parent);
    const report = await skiffJson(['inspect', MULTI, '--platform', 'linux/s390x'], path.join(parent, 's'));
    expect(report).toMatchObject({ location: 'source', platform: 'linux/s390x' });
    expect(fs.readdirSync(parent)).toEqual([]);
  });
});

describe('one name, several platforms', () => {
  it('keeps both platforms of a tag; images shows each; --platform chooses in unpack, save, inspect and rmi', async () => {
    const store = fresh('multi');
    const host = await skiffJson(['pull', MULTI], store);
    const arm = await skiffJson(['pull', MULTI, '--platform', 'linux/arm64'], store);
    expect(host.platform).toBe(HOST);
    expect(arm.platform).toBe('linux/arm64/v8');
    expect(arm.configDigest).not.toBe(host.configDigest);

    const images = await skiffJson(['images'], store);
    const name = host.name;
    expect(images.map((i: { names: string[]; platform: string }) => [i.names, i.platform])).toEqual([
      [[name], 'linux/amd64'],
      [[name], 'linux/arm64/v8'],
    ]);
    const table = (await skiff(['images'], store)).stdout.split('\n');
    expect(table.filter((line) => line.startsWith(`${name} `))).toHaveLength(2);
    expect(table.some((line) => line.startsWith(name) && line.includes('linux/arm64/v8'))).toBe(true);

    // inspect: the default is the host's platform; --platform picks the other.
    const inspected = await skiffJson(['inspect', MULTI], store);
    expect(inspected).toMatchObject({ location: 'store', configDigest: host.configDigest });
    const inspectedArm = await skiffJson(['inspect', MULTI, '--platform', 'linux/arm64'], store);
    expect(inspectedArm).toMatchObject({ location: 'store', configDigest: arm.configDigest });

    // unpack and save: the image of the platform asked for.
    const unpacked = await skiffJson(
      ['unpack', MULTI, fresh('rootfs'), '--platform', 'linux/arm64/v8'],
      store,
    );
    expect(unpacked.image).toBe(arm.configDigest);
    expect((await skiffJson(['unpack', MULTI, fresh('rootfs')], store)).image).toBe(host.configDigest);
    const layout = fresh('layout');
    await skiffJson(['save', MULTI, `oci:${layout}:arm`, '--platform', 'linux/arm64'], store);
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
    const manifest = JSON.parse(
      fs.readFileSync(path.join(layout, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'),
    );
    expect(manifest.config.digest).toBe(arm.configDigest);

    // A platform the name was not pulled for is not found (exit 2), naming what there is.
    const missing = await skiff(['unpack', MULTI, fresh('rootfs'), '--platform', 'linux/s390x'], store);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /not in the store for linux\/s390x \(it is for linux\/amd64, linux\/arm64\/v8\)/,
    );

    // rmi --platform removes that platform's name (and its image); the other stays.
    const removed = await skiffJson(['rmi', MULTI, '--platform', 'linux/arm64'], store);
    expect(removed).toEqual([
      { ref: MULTI, untagged: [{ name, platform: 'linux/arm64/v8' }], deleted: [arm.configDigest] },
    ]);
    const left = await skiffJson(['images'], store);
    expect(left.map((i: { configDigest: string }) => i.configDigest)).toEqual([host.configDigest]);
  });

  it('without --platform and no image for this host, takes the last pulled', async () => {
    const store = fresh('last');
    const v7 = await skiffJson(['pull', MULTI, '--platform', 'linux/arm/v7'], store);
    const s390x = await skiffJson(['pull', MULTI, '--platform', 'linux/s390x'], store);
    expect((await skiffJson(['inspect', MULTI], store)).configDigest).toBe(s390x.configDigest);
    // --platform is matched as pull matches an index: linux/arm means the best arm variant stored.
    const arm = await skiffJson(['unpack', MULTI, fresh('rootfs'), '--platform', 'linux/arm'], store);
    expect(arm.image).toBe(v7.configDigest);
    // By digest, --platform is checked against the image's.
    const wrong = await skiff(
      ['unpack', s390x.configDigest, fresh('rootfs'), '--platform', 'linux/arm'],
      store,
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/is for linux\/s390x, not linux\/arm\n$/);
    await skiffJson(['pull', MULTI, '--platform', 'linux/arm/v7'], store);
    expect((await skiffJson(['inspect', MULTI], store)).configDigest).toBe(v7.configDigest);
    const untagged = await skiffJson(['rmi', MULTI], store);
    expect(untagged[0].untagged).toEqual([{ name: v7.name, platform: 'linux/arm/v7' }]);
  });

  it('reads name files written before names carried a platform, and supersedes them on a re-pull', async () => {
    const store = fresh('legacy');
    const host = await skiffJson(['pull', MULTI], store);
    // Rewrite the name file as skiff wrote it before: names/<name>.json, without a platform.
    const names = path.join(store, 'names');
    const [file] = fs.readdirSync(names);
    const record = JSON.parse(fs.readFileSync(path.join(names, file!), 'utf8'));
    const legacy = path.join(names, `${encodeURIComponent(host.name)}.json`);
    fs.rmSync(path.join(names, file!));
    const { platform: _platform, ...old } = record;
    fs.writeFileSync(legacy, `${JSON.stringify(old)}\n`);
    expect(Object.keys(old).sort()).toEqual(['configDigest', 'manifestDigest', 'name', 'updatedAt']);

    const images = await skiffJson(['images'], store);
    expect(images).toMatchObject([{ names: [host.name], platform: HOST, configDigest: host.configDigest }]);
    expect((await skiffJson(['unpack', MULTI, fresh('rootfs')], store)).image).toBe(host.configDigest);

    // Another platform of the same tag keeps the old name too.
    const arm = await skiffJson(['pull', MULTI, '--platform', 'linux/arm64'], store);
    expect((await skiffJson(['images'], store)).map((i: { platform: string }) => i.platform).sort()).toEqual(
      ['linux/amd64', 'linux/arm64/v8'].sort(),
    );
    expect((await skiffJson(['inspect', MULTI, '--platform', 'linux/arm64'], store)).configDigest).toBe(
      arm.configDigest,
    );

    // Pulling the old name's platform again replaces its file with the new form.
    await skiffJson(['pull', MULTI], store);
    expect(fs.existsSync(legacy)).toBe(false);
    expect(fs.readdirSync(names)).toHaveLength(2);

    // rmi by name removes a name in the old form as well.
    fs.writeFileSync(legacy, `${JSON.stringify(old)}\n`);
    fs.rmSync(path.join(names, `${encodeURIComponent(host.name)}@${encodeURIComponent(HOST)}.json`));
    const removed = await skiffJson(['rmi', MULTI, '--platform', HOST], store);
    expect(removed[0].untagged).toEqual([{ name: host.name, platform: HOST }]);
    expect(fs.existsSync(legacy)).toBe(false);
  });
});
