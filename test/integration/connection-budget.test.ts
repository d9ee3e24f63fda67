// Issue 15 item 5: one budget of connections per registry for a whole `mirror --file` run, counted
// at a proxy in front of the real registry, and a large blob that is not kept waiting behind many
// small ones.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { type CountingProxy, startCountingProxy } from '../harness/counting-proxy.js';
import { writeTestLayout } from '../harness/layout.js';
import { makeTar } from '../harness/tar-writer.js';

const registry = inject('registry');
const SMALL_IMAGES = 12;
const LARGE_POSITION = 7; // the 8th item: it starts with the first --jobs 8, behind 7 small images
let work: { dir: string; cleanup: () => void };
let proxy: CountingProxy;
/** The same registry under another host: blobs are copied, not mounted across repositories. */
let destination: CountingProxy;
let repos: string[];
let largeLayer: string;

beforeAll(async () => {
  work = tempDir('skiff-budget-');
  const run = path.basename(work.dir).toLowerCase();
  const layouts: string[] = [];
  for (let i = 0; i <= SMALL_IMAGES; i++) {
    const large = i === LARGE_POSITION;
    // Incompressible content, different in every layer: no blob is shared, each crosses the wire.
    const layers = (large ? [24 * 1024 * 1024] : [192 * 1024, 192 * 1024, 192 * 1024]).map((size) => ({
      tar: makeTar([{ name: 'data.bin', content: randomBytes(size) }]),
      compress: 'none' as const,
    }));
    const layout = writeTestLayout(path.join(work.dir, `layout-${i}`), { layers });
    if (large) largeLayer = layout.layers[0]!.digest;
    layouts.push(layout.dir);
  }
  repos = layouts.map((_, i) => `budget-${run}/image-${i}`);
  const seed = path.join(work.dir, 'seed.yaml');
  fs.writeFileSync(
    seed,
    [
      'images:',
      ...layouts.flatMap((dir, i) => [
        `  - source: oci:${dir}:latest`,
        `    destination: docker://${registry}/${repos[i]}:v1`,
      ]),
    ].join('\n'),
  );
  const seeded = await runCli(['mirror', '--file', seed, '--jobs', '4']);
  expect(seeded.code, seeded.stderr).toBe(0);
  proxy = await startCountingProxy(registry);
  destination = await startCountingProxy(registry);
});
afterAll(async () => {
  await proxy?.stop();
  await destination?.stop();
  work?.cleanup();
});

describe('mirror --file under one connection budget', () => {
  it('never has more requests in flight to the registry than --connections, and the large blob goes first', async () => {
    const list = path.join(work.dir, 'list.yaml');
    fs.writeFileSync(
      list,
      [
        'images:',
        ...repos.flatMap((repo) => [
          `  - source: docker://${proxy.host}/${repo}:v1`,
          `    destination: docker://${destination.host}/${repo}-copy`,
        ]),
      ].join('\n'),
    );
    proxy.reset();
    destination.reset();
    const result = await runCli(['mirror', '--file', list, '--jobs', '8', '--connections', '5', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ images: SMALL_IMAGES + 1, succeeded: SMALL_IMAGES + 1 });

    // 8 images × 4 blobs at once would be 32 GETs and 32 uploads; each registry sees at most 5.
    for (const end of [proxy, destination]) {
      expect(end.maxInFlight()).toBeGreaterThan(1);
      expect(end.maxInFlight()).toBeLessThanOrEqual(5);
    }

    // Every blob answer's chunks in the order they passed the proxy.
    const events = proxy.blobEvents();
    const isLarge = (p: string) => p.endsWith(largeLayer);
    const firstLarge = events.findIndex((e) => isLarge(e.path));
    const lastLarge = events.findLastIndex((e) => isLarge(e.path));
    const smallDone = (from: number, to: number) =>
      events.slice(from, to).filter((e) => e.end && !isLarge(e.path)).length;
    const smallBlobs = SMALL_IMAGES * 4 + 1; // three layers and a config each; the large image's config
    expect(smallDone(0, events.length)).toBe(smallBlobs);
    // Asked for after 7 images' worth of small blobs, the large one starts before most of them...
    expect(smallDone(0, firstLarge), `small blobs copied before the large one started`).toBeLessThan(
      smallBlobs / 4,
    );
    // ...and its bytes flow while small blobs keep being copied beside it.
    expect(smallDone(firstLarge, lastLarge)).toBeGreaterThan(0);
  });
});
