// `mirror --dry-run` (issue 13 item 5): per image, whether it is up to date (by HEAD), and the
// manifest GETs the run makes at each registry, against two real registries; nothing is written.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { fixtureRef, type RunningRegistry, startRegistry } from '../harness/registry.js';

const source = inject('registry');
let target: RunningRegistry;
const work = tempDir('skiff-mirror-dry-run-');

beforeAll(async () => {
  target = await startRegistry();
});

afterAll(async () => {
  await target?.stop();
  work.cleanup();
});

async function mirror(args: string[]) {
  const result = await runCli(['mirror', ...args, '--json']);
  expect(result.code, result.stderr).toBe(0);
  const lines = result.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  return { image: lines.find((l) => l.type === 'image'), summary: lines.find((l) => l.type === 'summary') };
}

describe('mirror --dry-run', () => {
  it('counts the manifest GETs the run makes at each registry, writes nothing, and says up to date after', async () => {
    const src = `docker://${source}/fixtures/gzip:latest`;
    const dst = `docker://${target.host}/dry/gzip:1`;
    const dry = await mirror(['--dry-run', src, dst]);
    expect(dry.image).toMatchObject({ dryRun: true, upToDate: false, blobsCopied: 0, manifestsWritten: 0 });
    expect(dry.summary.manifestGets[source]).toBeGreaterThan(0);

    // Nothing was written: a second dry run sees the same, at the same cost.
    const again = await mirror(['--dry-run', src, dst]);
    expect(again.image.upToDate).toBe(false);
    expect(again.summary.manifestGets).toEqual(dry.summary.manifestGets);

    // The run makes exactly the GETs its dry run counted.
    const run = await mirror([src, dst]);
    expect(run.image).toMatchObject({ upToDate: false, manifestsWritten: 1, error: null });
    expect(run.image.dryRun).toBeUndefined();
    expect(run.summary.manifestGets).toEqual(dry.summary.manifestGets);

    // Mirrored: HEADs prove it up to date, and the run would cost no counted GET.
    const after = await mirror(['--dry-run', src, dst]);
    expect(after.image).toMatchObject({
      dryRun: true,
      upToDate: true,
      manifestDigest: run.image.manifestDigest,
    });
    expect(after.summary.manifestGets).toEqual({});
  });

  it('creates nothing at a local destination or a store', async () => {
    const layout = path.join(work.dir, 'layout');
    const store = path.join(work.dir, 'store');
    for (const destination of [`oci:${layout}:1`, `store:[${store}]dry:1`]) {
      const dry = await mirror(['--dry-run', fixtureRef('gzip'), destination]);
      expect(dry.image).toMatchObject({ dryRun: true, upToDate: false, error: null });
    }
    expect(fs.existsSync(layout)).toBe(false);
    expect(fs.existsSync(store)).toBe(false);
  });
});
