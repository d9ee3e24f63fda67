import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type Digest, sha256 } from '../../src/digest/index.js';
import { UsageError, VerificationError } from '../../src/errors/index.js';
import {
  MAX_SCHEMA1_BYTES,
  parseSchema1,
  SCHEMA1_MEDIA_TYPES,
  schema1Layers,
  schema1NonEmptyLayers,
  schema1ToOciConfig,
} from '../../src/manifest/schema1.js';
import { FIXTURES } from '../harness/registry.js';

/** The gzipped empty tar that schema1 writers use for throwaway layers. */
const GZIPPED_EMPTY_LAYER = 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4';

const fixtureManifest = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name, 'manifest.json'));
const fixtureBlob = (name: string, digest: string): Buffer =>
  fs.readFileSync(path.join(FIXTURES, name, digest.slice('sha256:'.length)));

/** DiffIDs as a puller must compute them for schema1: sha256 of each gunzipped layer, base first. */
function computedDiffIDs(name: string): Digest[] {
  const { manifest } = parseSchema1(fixtureManifest(name));
  return schema1NonEmptyLayers(manifest).map((l) => sha256(gunzipSync(fixtureBlob(name, l.blobSum))));
}

/** The diff_ids of the OCI image every schema1 fixture was converted from. */
function plainDiffIDs(): string[] {
  const layout = path.join(FIXTURES, 'plain');
  const blob = (d: string) =>
    JSON.parse(fs.readFileSync(path.join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8'));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  return blob(blob(index.manifests[0].digest).config.digest).rootfs.diff_ids;
}

/** Expects a VerificationError (exit 4) whose message contains every fragment. */
function expectInvalid(bytes: Buffer | string, ...fragments: string[]): void {
  let error: unknown;
  try {
    parseSchema1(Buffer.from(bytes));
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(VerificationError);
  expect((error as VerificationError).exitCode).toBe(4);
  for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
}

// ---- synthetic manifests ------------------------------------------------------------------------

const id = (n: number): string => sha256(`v1 id ${n}`).slice(7);
const blob = (n: number): Digest => sha256(`layer ${n}`);

/** A top-first schema1 document with a valid parent chain; `extra[i]` is merged into history[i]. */
function syntheticManifest(count: number, extra: Record<string, unknown>[] = []): Record<string, unknown> {
  const indexes = Array.from({ length: count }, (_, i) => i);
  return {
    schemaVersion: 1,
    name: 'library/test',
    tag: 'latest',
    architecture: 'amd64',
    fsLayers: indexes.map((i) => ({ blobSum: blob(i) })),
    history: indexes.map((i) => ({
      v1Compatibility: JSON.stringify({
        id: id(i),
        ...(i < count - 1 ? { parent: id(i + 1) } : {}),
        created: '2020-01-02T03:04:05.123456789Z',
        ...extra[i],
      }),
    })),
  };
}

const b64url = (text: string): string => Buffer.from(text).toString('base64url');

/**
 * Signs like libtrust's PrettySignature over Docker's 3-space indented JSON: the signature block is
 * spliced in before the final "\n}", which becomes formatTail. `lengths` overrides per-signature formatLength.
 */
function prettySigned(manifest: unknown, lengths?: number[]): { bytes: Buffer; payload: string } {
  const payload = JSON.stringify(manifest, null, 3);
  const formatLength = payload.lastIndexOf('\n}');
  const tail = payload.slice(formatLength);
  const signatures = (lengths ?? [formatLength]).map((length) => ({
    header: { alg: 'ES256' },
    signature: 'c2lnbmF0dXJl',
    protected: b64url(
      JSON.stringify({ formatLength: length, formatTail: b64url(tail), time: '2020-01-01T00:00:00Z' }),
    ),
  }));
  const block = `,\n   "signatures": ${JSON.stringify(signatures, null, 3).replaceAll('\n', '\n   ')}`;
  return { bytes: Buffer.from(payload.slice(0, formatLength) + block + tail), payload };
}

// ---- tests ------------------------------------------------------------------------------------------

describe('schema1 fixtures written by skopeo', () => {
  it('separates the signed payload from the signature block', () => {
    const signed = parseSchema1(fixtureManifest('schema1'));
    const unsignedBytes = fixtureManifest('schema1-unsigned');
    const unsigned = parseSchema1(unsignedBytes);
    expect(signed.manifest.signed).toBe(true);
    expect(unsigned.manifest.signed).toBe(false);
    expect(fixtureManifest('schema1').includes('"signatures"')).toBe(true);
    // The unsigned fixture is, by construction, the signed one's payload.
    expect(signed.payload.equals(unsignedBytes)).toBe(true);
    expect(unsigned.payload.equals(unsignedBytes)).toBe(true);
    expect(signed.digest).toBe(sha256(unsignedBytes));
    expect(unsigned.digest).toBe(signed.digest);
    expect(signed.digest).not.toBe(sha256(fixtureManifest('schema1')));
    expect(signed.manifest).toEqual({ ...unsigned.manifest, signed: true });
  });

  it('lists layers base first, and their DiffIDs are the source image diff_ids in order', () => {
    const { manifest } = parseSchema1(fixtureManifest('schema1'));
    const layers = schema1Layers(manifest);
    expect(layers.map((l) => l.blobSum)).toEqual(manifest.fsLayers.map((l) => l.blobSum).reverse());
    expect(layers.every((l) => !l.emptyLayer)).toBe(true);
    for (const l of layers)
      expect(fixtureBlob('schema1', l.blobSum).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(computedDiffIDs('schema1')).toEqual(plainDiffIDs());
  });

  it('marks throwaway entries as empty layers and skips them for pulling', () => {
    const { manifest } = parseSchema1(fixtureManifest('schema1-throwaway'));
    const layers = schema1Layers(manifest);
    expect(layers.map((l) => l.emptyLayer)).toEqual([true, false, true, false, true]);
    for (const l of layers.filter((x) => x.emptyLayer)) expect(l.blobSum).toBe(GZIPPED_EMPTY_LAYER);
    const pulled = schema1NonEmptyLayers(manifest);
    expect(pulled.map((l) => l.blobSum)).toEqual([layers[1]?.blobSum, layers[3]?.blobSum]);
    // Content proves the order: the base layer holds layer-a, the upper one layer-b.
    const tars = pulled.map((l) => gunzipSync(fixtureBlob('schema1-throwaway', l.blobSum)));
    expect(tars.map((t) => [t.includes('etc/layer-a.txt'), t.includes('etc/layer-b.txt')])).toEqual([
      [true, false],
      [false, true],
    ]);
  });

  it('converts the plain image to an OCI config with the computed DiffIDs', () => {
    const { manifest } = parseSchema1(fixtureManifest('schema1'));
    const diffIDs = computedDiffIDs('schema1');
    const { config, bytes } = schema1ToOciConfig(manifest, diffIDs);
    expect(config).toEqual({
      created: '2023-11-14T22:13:20Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: plainDiffIDs() },
      // skopeo's conversion keeps only the lower entries' created_by (the top one carries the config).
      history: [
        { created: '2023-11-14T22:13:20Z', created_by: 'skiff fixture layer 0' },
        { created: '2023-11-14T22:13:20Z' },
      ],
    });
    expect(JSON.parse(bytes.toString())).toEqual(config);
    expect(schema1ToOciConfig(manifest, diffIDs).bytes.equals(bytes)).toBe(true);
    expect(
      schema1ToOciConfig(parseSchema1(fixtureManifest('schema1-unsigned')).manifest, diffIDs).bytes,
    ).toEqual(bytes);
  });

  it('converts the throwaway image: empty_layer history, platform from the top entry', () => {
    const { manifest } = parseSchema1(fixtureManifest('schema1-throwaway'));
    const diffIDs = computedDiffIDs('schema1-throwaway');
    const { config } = schema1ToOciConfig(manifest, diffIDs);
    expect(config).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });
    expect(config.rootfs).toEqual({ type: 'layers', diff_ids: diffIDs });
    const created = '2023-11-14T22:13:20Z';
    expect(config.history).toEqual([
      {
        created,
        created_by: '/bin/sh -c #(nop)  ARG VERSION=1',
        comment: 'base is empty',
        empty_layer: true,
      },
      { created, created_by: '/bin/sh -c #(nop) ADD file:a in /', author: 'skiff fixtures' },
      { created, created_by: '/bin/sh -c #(nop)  ENV MIDDLE=1', empty_layer: true },
      { created, created_by: '/bin/sh -c #(nop) ADD file:b in /' },
      { created, empty_layer: true },
    ]);
  });

  it('refuses DiffIDs that do not match the non-empty layers', () => {
    const { manifest } = parseSchema1(fixtureManifest('schema1-throwaway'));
    const diffIDs = computedDiffIDs('schema1-throwaway');
    expect(() => schema1ToOciConfig(manifest, diffIDs.slice(1))).toThrow(UsageError);
    expect(() => schema1ToOciConfig(manifest, [...diffIDs, ...diffIDs, diffIDs[0]!])).toThrow(
      /needs 2 DiffIDs/,
    );
    expect(() => schema1ToOciConfig(manifest, [diffIDs[0]!, 'sha256:nope' as Digest])).toThrow(
      /diffIDs\[1\]/,
    );
  });
});

describe('schema1 parsing of synthetic documents', () => {
  it('exports both schema1 media types', () => {
    expect([...SCHEMA1_MEDIA_TYPES].sort()).toEqual([
      'application/vnd.docker.distribution.manifest.v1+json',
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
    ]);
  });

  it('rebuilds the payload of a Docker-style pretty signed manifest with several signatures', () => {
    const m = syntheticManifest(2);
    const { payload } = prettySigned(m);
    const { bytes } = prettySigned(m, [payload.lastIndexOf('\n}'), payload.lastIndexOf('\n}')]);
    const parsed = parseSchema1(bytes);
    expect(parsed.payload.toString()).toBe(payload);
    expect(parsed.digest).toBe(sha256(payload));
    expect(parsed.manifest).toMatchObject({ name: 'library/test', tag: 'latest', signed: true });
  });

  it('drops a layer repeating the ID below it, as Docker does', () => {
    const m = syntheticManifest(3);
    const history = m.history as { v1Compatibility: string }[];
    history[0] = {
      v1Compatibility: JSON.stringify({ id: id(1), parent: id(2), created: '2020-01-02T03:04:05Z' }),
    };
    const { manifest } = parseSchema1(Buffer.from(JSON.stringify(m)));
    expect(manifest.fsLayers.map((l) => l.blobSum)).toEqual([blob(1), blob(2)]);
    expect(manifest.history).toHaveLength(2);
  });

  it('maps the top v1 config to the OCI config, dropping Docker nulls and empty strings', () => {
    const top = {
      architecture: 'arm',
      variant: 'v7',
      author: 'someone',
      config: {
        Hostname: 'abc',
        User: 'app',
        Env: ['A=1'],
        Entrypoint: '/entry',
        Cmd: null,
        WorkingDir: '',
        Labels: { z: '1', a: '2' },
        ExposedPorts: { '80/tcp': {} },
        Volumes: { '/data': {} },
        StopSignal: 'SIGTERM',
        OnBuild: null,
      },
      container_config: { Cmd: ['/bin/sh', '-c', 'echo hi'] },
    };
    const m = { ...syntheticManifest(2, [top, { throwaway: true }]), architecture: 'ignored' };
    const { manifest } = parseSchema1(Buffer.from(JSON.stringify(m)));
    const { config, bytes } = schema1ToOciConfig(manifest, [blob(9)]);
    expect(config).toEqual({
      created: '2020-01-02T03:04:05.123456789Z',
      author: 'someone',
      architecture: 'arm',
      variant: 'v7',
      os: 'linux',
      config: {
        User: 'app',
        Env: ['A=1'],
        Entrypoint: ['/entry'],
        Labels: { z: '1', a: '2' },
        ExposedPorts: { '80/tcp': {} },
        Volumes: { '/data': {} },
        StopSignal: 'SIGTERM',
      },
      rootfs: { type: 'layers', diff_ids: [blob(9)] },
      history: [
        { created: '2020-01-02T03:04:05.123456789Z', empty_layer: true },
        { created: '2020-01-02T03:04:05.123456789Z', created_by: '/bin/sh -c echo hi', author: 'someone' },
      ],
    });
    // Keys sorted at every level, whatever order the input had.
    expect(bytes.toString()).toContain('"Labels":{"a":"2","z":"1"}');
    expect(bytes.toString().startsWith('{"architecture":"arm","author":"someone","config":')).toBe(true);
  });

  it('falls back to the manifest architecture when the top entry has none', () => {
    const { manifest } = parseSchema1(Buffer.from(JSON.stringify(syntheticManifest(1))));
    expect(schema1ToOciConfig(manifest, [blob(0)]).config).toMatchObject({
      architecture: 'amd64',
      os: 'linux',
    });
  });
});

describe('schema1 bad inputs', () => {
  const unsigned = (m: unknown) => JSON.stringify(m);

  it('refuses non-JSON and non-objects', () => {
    expectInvalid('{"schemaVersion": 1,', 'schema1 manifest is not valid JSON');
    expectInvalid('[1]', 'not a JSON object');
  });

  it('refuses mismatched fsLayers/history lengths', () => {
    const m = syntheticManifest(3);
    expectInvalid(
      unsigned({ ...m, history: (m.history as unknown[]).slice(0, 2) }),
      'fsLayers',
      '3 entries',
      'history has 2',
    );
    expect(() =>
      schema1Layers({
        name: '',
        tag: '',
        architecture: '',
        fsLayers: [{ blobSum: blob(0) }],
        history: [],
        signed: false,
      }),
    ).toThrow(VerificationError);
  });

  it('names a bad blobSum', () => {
    const m = syntheticManifest(3);
    (m.fsLayers as { blobSum: string }[])[2] = { blobSum: 'sha256:1234' };
    expectInvalid(unsigned(m), 'schema1 manifest: fsLayers[2].blobSum:', 'not a valid sha256 digest');
    (m.fsLayers as { blobSum: string }[])[2] = { blobSum: `sha512:${'ab'.repeat(64)}` };
    expectInvalid(unsigned(m), 'fsLayers[2].blobSum', 'only sha256');
  });

  it('names bad fields inside v1Compatibility', () => {
    const notJson = syntheticManifest(2);
    (notJson.history as { v1Compatibility: string }[])[1] = { v1Compatibility: '{nope' };
    expectInvalid(unsigned(notJson), 'history[1].v1Compatibility: not valid JSON');
    expectInvalid(
      unsigned(syntheticManifest(1, [{ config: { Env: 'A=1' } }])),
      'history[0].v1Compatibility.config.Env',
    );
    expectInvalid(unsigned(syntheticManifest(1, [{ id: 'short' }])), 'history[0].v1Compatibility.id');
    expectInvalid(
      unsigned(syntheticManifest(1, [{ created: 'yesterday' }])),
      'history[0].v1Compatibility.created',
    );
    expectInvalid(
      unsigned(syntheticManifest(1, [{ throwaway: 'yes' }])),
      'history[0].v1Compatibility.throwaway',
    );
  });

  it('refuses a broken parent chain, a parented base and repeated IDs', () => {
    expectInvalid(
      unsigned(syntheticManifest(2, [{ parent: id(7) }])),
      'history[0].v1Compatibility.parent',
      id(1),
    );
    expectInvalid(
      unsigned(syntheticManifest(2, [{}, { parent: id(7) }])),
      'history[1].v1Compatibility.parent',
    );
    expectInvalid(
      unsigned(syntheticManifest(3, [{ id: id(2), parent: id(1) }])),
      'history[2].v1Compatibility.id',
      'already appears in history[0]',
    );
  });

  it('refuses other schema versions, missing layers and ambiguous documents', () => {
    expectInvalid(unsigned({ ...syntheticManifest(1), schemaVersion: 2 }), 'schemaVersion');
    expectInvalid(unsigned({ ...syntheticManifest(1), fsLayers: [], history: [] }), 'fsLayers');
    expectInvalid(unsigned({ ...syntheticManifest(1), layers: [] }), 'layers', 'ambiguous');
  });

  it('refuses signatures that disagree on formatLength', () => {
    const m = syntheticManifest(2);
    const length = prettySigned(m).payload.lastIndexOf('\n}');
    const { bytes } = prettySigned(m, [length, length - 1]);
    expectInvalid(bytes, 'signatures[1].protected', 'disagree with signatures[0]');
  });

  it('refuses malformed signature blocks', () => {
    const m = syntheticManifest(1);
    expectInvalid(unsigned({ ...m, signatures: [] }), 'signatures', 'at least one signature');
    expectInvalid(unsigned({ ...m, signatures: null }), 'signatures');
    const sig = (protectedHeader: string) =>
      unsigned({ ...m, signatures: [{ signature: 'x', protected: protectedHeader }] });
    expectInvalid(sig('!!!'), 'signatures[0].protected', 'base64url');
    expectInvalid(sig(b64url('not json')), 'signatures[0].protected', 'not base64url-encoded JSON');
    expectInvalid(sig(b64url('{"formatTail":"fQ"}')), 'signatures[0].protected.formatLength');
    expectInvalid(sig(b64url('{"formatLength":99999,"formatTail":"fQ"}')), 'formatLength', 'beyond');
  });

  it('refuses a signed payload that differs from the visible document', () => {
    // The payload is rebuilt from formatTail alone (formatLength 0): a digest pinned to the honest
    // manifest would match, while the visible document lists other layers.
    const honest = unsigned(syntheticManifest(1));
    const visible = { ...syntheticManifest(1), fsLayers: [{ blobSum: blob(666) }] };
    const signatures = [
      { signature: 'x', protected: b64url(JSON.stringify({ formatLength: 0, formatTail: b64url(honest) })) },
    ];
    expectInvalid(unsigned({ ...visible, signatures }), 'signatures', 'differs from the document');
  });

  it('bounds the document size before parsing', () => {
    const big = Buffer.alloc(MAX_SCHEMA1_BYTES + 1, 0x20);
    expectInvalid(big, 'more than the 4194304-byte limit');
  });
});
