// The mirror list: validation, expansion into jobs, destination rules, and the shard rule.
import { describe, expect, it } from 'vitest';
import {
  expandList,
  inShard,
  parseMirrorList,
  parseShard,
  shardKey,
  shardOf,
} from '../../src/mirror/index.js';
import { RegistryClient } from '../../src/registry/client.js';

const client = new RegistryClient();
const DIGEST = `sha256:${'ab'.repeat(32)}`;

function expand(yaml: string, options: { all?: boolean; platform?: string } = {}) {
  return expandList(parseMirrorList(yaml, 'list.yaml'), { client, ...options });
}

describe('parseMirrorList', () => {
  it('names the offending field', () => {
    expect(() => parseMirrorList('images:\n  - source: a\n    destinaton: b\n', 'l.yaml')).toThrow(
      /l\.yaml: images\[0\]/,
    );
    expect(() => parseMirrorList('images:\n  - source: a\n', 'l.yaml')).toThrow(/images\[0\]\.destination/);
    expect(() => parseMirrorList('images: []\n', 'l.yaml')).toThrow(/names no image/);
    expect(() => parseMirrorList('images:\n  - {source: a, destination: b, tags: ["bad tag"]}\n')).toThrow(
      /tags\[0\]: expected a tag or a sha256: digest/,
    );
    expect(() =>
      parseMirrorList('images:\n  - {source: a, destination: b, tags: [x], all-tags: true}\n'),
    ).toThrow(/tags or all-tags/);
    expect(() => parseMirrorList(': : :')).toThrow(/not valid YAML/);
  });
});

describe('expandList', () => {
  it('gives each tag and digest its own job, destinations following the source', async () => {
    const jobs = await expand(
      `images:\n  - source: docker://src.example/app\n    destination: docker://dst.example:5000/mirror/app\n    tags: ["1.0", "${DIGEST}"]\n`,
    );
    expect(jobs.map((j) => [j.source, j.destination])).toEqual([
      ['docker://src.example/app:1.0', 'docker://dst.example:5000/mirror/app:1.0'],
      [`docker://src.example/app@${DIGEST}`, `docker://dst.example:5000/mirror/app@${DIGEST}`],
    ]);
  });

  it('appends the source repository to a destination ending in "/"', async () => {
    const jobs = await expand(
      'images:\n  - {source: "quay.io/org/tool:1.2", destination: "docker://m.example/"}\n',
    );
    expect(jobs[0]).toMatchObject({
      source: 'docker://quay.io/org/tool:1.2',
      destination: 'docker://m.example/org/tool:1.2',
    });
  });

  it('keeps a destination tag for a single image, and refuses one for several', async () => {
    const single = await expand(
      'images:\n  - {source: "docker://s.example/a:1", destination: "docker://d.example/b:stable"}\n',
    );
    expect(single[0]!.destination).toBe('docker://d.example/b:stable');
    const many = await expand(
      'images:\n  - {source: "docker://s.example/a", destination: "docker://d.example/b:stable", tags: ["1", "2"]}\n',
    );
    expect(many).toHaveLength(1);
    expect(many[0]!.error?.message).toMatch(/holds one image, but the entry expands to 2/);
  });

  it('takes the tag into an oci: layout, and refuses several images for dir:', async () => {
    const jobs = await expand(
      'images:\n  - {source: "docker://s.example/a", destination: "oci:/tmp/layout", tags: ["1", "2"]}\n  - {source: "docker://s.example/a", destination: "dir:/tmp/d", tags: ["1", "2"]}\n',
    );
    expect(jobs.slice(0, 2).map((j) => j.destination)).toEqual(['oci:/tmp/layout:1', 'oci:/tmp/layout:2']);
    expect(jobs[2]!.error?.kind).toBe('usage');
  });

  it('records each tag under NAME:TAG in the store, and keeps a name that has its tag', async () => {
    const jobs = await expand(
      'images:\n  - {source: "docker://s.example/a", destination: "store:[/tmp/s]mirror/a", tags: ["1", "2"]}\n  - {source: "docker://s.example/a:3", destination: "store:b:stable"}\n  - {source: "docker://s.example/a", destination: "store:b:stable", tags: ["1", "2"]}\n',
    );
    expect(jobs.slice(0, 3).map((j) => j.destination)).toEqual([
      'store:[/tmp/s]mirror/a:1',
      'store:[/tmp/s]mirror/a:2',
      'store:b:stable',
    ]);
    expect(jobs[3]!.error?.message).toMatch(/holds one image, but the entry expands to 2/);
  });

  it('applies the command defaults unless the item says otherwise', async () => {
    const jobs = await expand(
      'images:\n  - {source: "s.example/a", destination: "docker://d.example/a"}\n  - {source: "s.example/b", destination: "docker://d.example/b", platform: linux/arm64}\n',
      { all: true },
    );
    expect(jobs.map((j) => [j.all, j.platform])).toEqual([
      [true, undefined],
      [false, 'linux/arm64'],
    ]);
  });

  it('refuses a source that names a tag and also lists tags', async () => {
    const jobs = await expand(
      'images:\n  - {source: "docker://s.example/a:1", destination: "docker://d.example/a", tags: ["2"]}\n',
    );
    expect(jobs[0]!.error?.message).toMatch(/names a tag or digest already/);
  });

  it('drops duplicate jobs', async () => {
    const jobs = await expand(
      'images:\n  - {source: "docker://s.example/a:1", destination: "docker://d.example/a"}\n  - {source: "s.example/a:1", destination: "d.example/a"}\n',
    );
    expect(jobs).toHaveLength(1);
  });
});

describe('shards', () => {
  const keys = Array.from({ length: 1000 }, (_, i) =>
    shardKey(`docker://s.example/app:${i}`, `docker://d.example/app:${i}`),
  );

  it('put every item in exactly one shard, the same one on every run', () => {
    for (const count of [1, 2, 3, 7]) {
      for (const key of keys) {
        const owners = Array.from({ length: count }, (_, i) => i + 1).filter((index) =>
          inShard(key, { index, count }),
        );
        expect(owners).toEqual([shardOf(key, count)]);
      }
    }
    expect(shardOf(keys[0]!, 5)).toBe(shardOf(keys[0]!, 5));
  });

  it('spread a list roughly evenly', () => {
    const sizes = [1, 2, 3, 4].map((index) => keys.filter((k) => inShard(k, { index, count: 4 })).length);
    for (const size of sizes) expect(size).toBeGreaterThan(200);
  });

  it('parse I/N and refuse nonsense', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', '1', 'a/b', '-1/2'])
      expect(() => parseShard(bad)).toThrow(/--shard/);
  });
});
