// A zstd layer of 4 MiB or more is decoded (and its DiffID hashed) on a worker thread
// (src/formats/zstd-decode-worker.ts): a full pull of one must commit what the synchronous decoder
// would, refuse a wrong DiffID, a corrupt frame and a bomb exactly as it does (exit 4, one line
// naming the layer), and leave nothing in the store.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_FROM_BYTES } from '../../src/formats/decode-worker.js';
import { zstd } from '../../src/formats/zstd-native.js';
import { runCli } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { pseudoRandomBytes } from '../harness/random.js';
import { diffSnapshots, snapshotStore } from '../harness/snapshot.js';
import { makeTar } from '../harness/tar-writer.js';
import { expectPulledWhole, expectRefused, seededStore, workerLayerTar } from '../harness/worker-pull.js';

const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

let work: Awaited<ReturnType<typeof seededStore>>;
const { big, tar } = workerLayerTar(11);
/** The tar in several frames (as zstd:chunked writes a frame per file), cut across the worker's batches. */
const frames = () => {
  const cuts = [0, 1000, 1024 * 1024 + 3, WORKER_FROM_BYTES + 512 * 1024 + 1024, tar.length];
  return Buffer.concat(cuts.slice(1).map((end, i) => zstd().compress(tar.subarray(cuts[i], end))));
};

/** A second layer over the worker's threshold, in frames as `frames` cuts them. */
const big2 = pseudoRandomBytes(WORKER_FROM_BYTES + 256 * 1024, 12);
const tar2 = makeTar([
  { name: 'big2.bin', content: big2 },
  { name: 'etc/second', content: 'second\n' },
]);
const frames2 = () => {
  const cuts = [0, 700 * 1024, WORKER_FROM_BYTES, tar2.length];
  return Buffer.concat(cuts.slice(1).map((end, i) => zstd().compress(tar2.subarray(cuts[i], end))));
};

/** An image of both layers, decoded at once by the one shared worker. */
function twoLayers(name: string, blob: Buffer, blob2: Buffer) {
  return writeTestLayout(path.join(work.dir, name), {
    layers: [
      { tar, blob, mediaType: ZSTD },
      { tar: tar2, blob: blob2, mediaType: ZSTD },
    ],
  });
}

function layout(name: string, blob: Buffer, diffID?: string) {
  return writeTestLayout(path.join(work.dir, name), {
    layers: [{ tar, blob, mediaType: ZSTD, ...(diffID ? { diffID } : {}) }],
  });
}

beforeAll(async () => {
  work = await seededStore('skiff-zstd-worker-');
});
afterAll(() => work.cleanup());

/** Pulls `ref` under a 2 MiB --max-layer-size, expecting exit 4 naming the layer and `cause`, nothing stored. */
const refused = (ref: string, digest: string, cause: RegExp | string) =>
  expectRefused(work.store, ref, digest, cause, ['--max-layer-size', '2MiB']);

describe('a zstd layer decoded on the worker', () => {
  it("refuses a tar that does not hash to the config's DiffID (the worker's hash is checked)", async () => {
    const image = layout('wrong-diffid', frames(), `sha256:${'0'.repeat(64)}`);
    await expectRefused(work.store, `oci:${image.dir}:latest`, image.layers[0]!.digest, 'DiffID mismatch');
  });

  it('refuses a corrupt frame as the synchronous decoder does: exit 4, "does not decompress"', async () => {
    const blob = frames();
    // The last frame's magic number, past the worker's first batches.
    const last = blob.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), WORKER_FROM_BYTES);
    expect(last).toBeGreaterThan(WORKER_FROM_BYTES);
    blob[last] = 0;
    const image = layout('corrupt', blob);
    const digest = image.layers[0]!.digest;
    await expectRefused(
      work.store,
      `oci:${image.dir}:latest`,
      digest,
      `layer ${digest} does not decompress as zstd: `,
    );
  });

  it('refuses a layer that decodes past --max-layer-size before writing more', async () => {
    const image = layout('bomb', frames());
    await refused(
      `oci:${image.dir}:latest`,
      image.layers[0]!.digest,
      'more than 2097152 bytes, the limit set by --max-layer-size',
    );
  });

  it('refuses the layer with a corrupt frame when two layers share the worker: exit 4, that layer named', async () => {
    const blob2 = frames2();
    blob2[blob2.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), WORKER_FROM_BYTES - 1024 * 1024)] = 0;
    const image = twoLayers('two-corrupt', frames(), blob2);
    const before = snapshotStore(work.store);
    const result = await runCli(['pull', `oci:${image.dir}:latest`], { SKIFF_STORE: work.store });
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`layer ${image.layers[1]!.digest} does not decompress as zstd: `);
    expect(diffSnapshots(before, snapshotStore(work.store))).toEqual([]);
  });

  // Last: once stored, the layer is reused by its DiffID and the refusals above would not run.
  it('is pulled and stored under its DiffID, the same tree as its tar', async () => {
    // Without --max-layer-size: the other tests' 2 MiB would refuse it.
    const image = layout('good', frames());
    expect(fs.statSync(image.layers[0]!.file).size).toBeGreaterThanOrEqual(WORKER_FROM_BYTES);
    await expectPulledWhole(
      work.store,
      `oci:${image.dir}:latest`,
      image.layers[0]!.diffID,
      big,
      path.join(work.dir, 'unpacked'),
    );
  });

  it('pulls two layers decoded at once by the shared worker, each under its DiffID', async () => {
    const image = twoLayers('two-good', frames(), frames2());
    const ref = `oci:${image.dir}:latest`;
    // A store of its own: the first layer is not reused, so both are decoded at once.
    const fresh = { SKIFF_STORE: path.join(work.dir, 'store-two') };
    const pulled = await runCli(['pull', '--json', ref], fresh);
    expect(pulled.code, pulled.stderr).toBe(0);
    const layers = JSON.parse(pulled.stdout).layers;
    expect(layers.map((l: { diffID: string }) => l.diffID)).toEqual(image.layers.map((l) => l.diffID));
    expect(layers.map((l: { method: string }) => l.method)).toEqual(['full', 'full']);
    expect((await runCli(['fsck'], fresh)).code).toBe(0);
    const dir = path.join(work.dir, 'unpacked-two');
    expect((await runCli(['unpack', ref, dir], fresh)).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'big.bin')).equals(big)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'big2.bin')).equals(big2)).toBe(true);
  });
});
