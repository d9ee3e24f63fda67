// gc after rmi: objects only the removed image used go, packs holding both live and dead objects
// are rewritten, and the image that stays unpacks and saves exactly as before.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../harness/cli.js';
import { diffSnapshots, snapshot } from '../harness/snapshot.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');
const work = tempDir('skiff-gc-');
afterAll(() => work.cleanup());

async function skiffJson(args: string[], store: string) {
  const result = await runCli([...args, '--json'], { SKIFF_STORE: store });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

describe('gc', () => {
  it('after rmi keeps exactly what the remaining image needs, rewriting the packs it shares', async () => {
    const store = path.join(work.dir, 'store');
    const v1 = await skiffJson(['pull', `oci:${path.join(FIXTURES, 'demo-v1')}:latest`], store);
    const v2Ref = `oci:${path.join(FIXTURES, 'demo-v2')}:latest`;
    // v2 is pulled partially: most of its files live in the pack v1's pull wrote.
    const v2 = await skiffJson(['pull', v2Ref], store);
    expect(v2.layers.map((l: { method: string }) => l.method)).toEqual(['partial']);

    const before = path.join(work.dir, 'before');
    expect((await runCli(['unpack', v2Ref, before], { SKIFF_STORE: store })).code).toBe(0);
    await skiffJson(['rmi', v1.configDigest], store);
    const swept = await skiffJson(['gc'], store);
    expect(swept).toMatchObject({ layersRemoved: 1, packsRewritten: 1 });
    expect(swept.objectsRemoved).toBeGreaterThan(0);
    expect(swept.bytesFreed).toBeGreaterThan(0);

    const after = path.join(work.dir, 'after');
    expect((await runCli(['unpack', v2Ref, after], { SKIFF_STORE: store })).code).toBe(0);
    expect(diffSnapshots(snapshot(before), snapshot(after))).toEqual([]);
    // save rebuilds every layer from the rewritten packs and proves it against its DiffID.
    const saved = path.join(work.dir, 'saved');
    expect((await runCli(['save', v2Ref, `oci:${saved}:v2`], { SKIFF_STORE: store })).code).toBe(0);

    // Nothing left to sweep.
    expect(await skiffJson(['gc'], store)).toMatchObject({
      layersRemoved: 0,
      objectsRemoved: 0,
      packsRewritten: 0,
    });
  });
});
