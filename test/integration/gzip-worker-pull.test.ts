// A gzip layer of 4 MiB or more is decoded (and its DiffID hashed) on a worker thread
// (src/formats/gzip-decode-worker.ts): a full pull of one must commit what node's gunzip on the
// main thread would, and refuse a wrong DiffID, a corrupt or truncated gzip stream, a truncated
// blob and a bomb exactly as it does (exit 4, one line naming the layer), leaving nothing in the
// store.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_FROM_BYTES } from '../../src/formats/decode-worker.js';
import { runCli } from '../harness/cli.js';
import { writeTestLayout } from '../harness/layout.js';
import { expectPulledWhole, expectRefused, seededStore, workerLayerTar } from '../harness/worker-pull.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

let work: Awaited<ReturnType<typeof seededStore>>;
const { big, tar } = workerLayerTar(12);
/** The tar as two gzip members (eStargz-like), the second starting past the worker's first batches. */
const blob = () => {
  const cut = WORKER_FROM_BYTES + 100_000;
  return Buffer.concat([zlib.gzipSync(tar.subarray(0, cut)), zlib.gzipSync(tar.subarray(cut))]);
};

function layout(name: string, layerBlob: Buffer, diffID?: string) {
  return writeTestLayout(path.join(work.dir, name), {
    layers: [{ tar, blob: layerBlob, mediaType: GZIP, ...(diffID ? { diffID } : {}) }],
  });
}

beforeAll(async () => {
  work = await seededStore('skiff-gzip-worker-');
});
afterAll(() => work.cleanup());

/** Pulls `ref`, expecting exit 4 with one line naming the layer and `cause`, and nothing stored. */
const refused = (ref: string, digest: string, cause: RegExp | string, flags: string[] = []) =>
  expectRefused(work.store, ref, digest, cause, flags);

describe('a gzip layer decoded on the worker', () => {
  it("refuses a tar that does not hash to the config's DiffID (the worker's hash is checked)", async () => {
    const image = layout('wrong-diffid', blob(), `sha256:${'0'.repeat(64)}`);
    // The tar's real DiffID, as the worker hashed it, is named.
    const real = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    await refused(
      `oci:${image.dir}:latest`,
      image.layers[0]!.digest,
      `DiffID mismatch: the config expects sha256:0000`,
    );
    const result = await runCli(['pull', `oci:${image.dir}:latest`], { SKIFF_STORE: work.store });
    expect(result.stderr).toContain(`the layer's tar hashes to ${real}`);
  });

  it('refuses a corrupt gzip stream as node\'s gunzip does: exit 4, "does not decompress"', async () => {
    const corrupt = blob();
    // A byte of the first member's incompressible data, past the worker's first input batch: its
    // CRC-32 no longer matches.
    corrupt[WORKER_FROM_BYTES - 1000]! ^= 0xff;
    const image = layout('corrupt', corrupt);
    const digest = image.layers[0]!.digest;
    await refused(
      `oci:${image.dir}:latest`,
      digest,
      `layer ${digest} does not decompress as gzip: incorrect data check`,
    );
  });

  it('refuses a gzip stream cut short, published as it is: "unexpected end of file"', async () => {
    const whole = blob();
    const image = layout('cut-stream', whole.subarray(0, whole.length - 1000));
    const digest = image.layers[0]!.digest;
    await refused(
      `oci:${image.dir}:latest`,
      digest,
      `layer ${digest} does not decompress as gzip: unexpected end of file`,
    );
  });

  it('refuses a blob shorter than its descriptor says', async () => {
    const image = layout('cut-blob', blob());
    const file = image.layers[0]!.file;
    fs.truncateSync(file, fs.statSync(file).size - 4096);
    await refused(`oci:${image.dir}:latest`, image.layers[0]!.digest, /size|digest|bytes/);
  });

  it('refuses a layer that decompresses past --max-layer-size before writing more', async () => {
    const image = layout('bomb', blob());
    await refused(
      `oci:${image.dir}:latest`,
      image.layers[0]!.digest,
      'more than 2097152 bytes, the limit set by --max-layer-size',
      ['--max-layer-size', '2MiB'],
    );
  });

  // Last: once stored, the layer is reused by its DiffID and the refusals above would not run.
  it('is pulled and stored under its DiffID, the same tree as its tar', async () => {
    const image = layout('good', blob());
    expect(fs.statSync(image.layers[0]!.file).size).toBeGreaterThanOrEqual(WORKER_FROM_BYTES);
    await expectPulledWhole(
      work.store,
      `oci:${image.dir}:latest`,
      image.layers[0]!.diffID,
      big,
      path.join(work.dir, 'unpacked'),
    );
  });
});
