// schema1 digests against a real registry (moved from test/unit/schema1.test.ts: it starts a
// registry, so it belongs to the integration project).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/digest/index.js';
import { parseSchema1 } from '../../src/manifest/schema1.js';
import { FIXTURES, type RunningRegistry, skopeoCopy, startRegistry } from '../harness/registry.js';

const SIGNED_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

const fixtureManifest = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name, 'manifest.json'));

describe('schema1 digest agrees with a real registry', () => {
  let registry: RunningRegistry;
  const pushed = ['schema1', 'schema1-unsigned', 'schema1-throwaway'];

  beforeAll(async () => {
    registry = await startRegistry({ schema1: true });
    // skopeo re-signs on push (the manifest name changes to the repository), so the registry holds
    // new bytes: both sides compute a digest over the same real signed document.
    for (const name of pushed)
      await skopeoCopy(`dir:${path.join(FIXTURES, name)}`, `docker://${registry.host}/s1/${name}:v1`);
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it.each(pushed)('%s: Docker-Content-Digest is the digest of the payload', async (name) => {
    const url = `http://${registry.host}/v2/s1/${name}/manifests/v1`;
    const res = await fetch(url, { headers: { Accept: SIGNED_MEDIA_TYPE } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(SIGNED_MEDIA_TYPE);
    const body = Buffer.from(await res.arrayBuffer());
    const parsed = parseSchema1(body);
    expect(parsed.manifest.signed).toBe(true);
    expect(parsed.manifest.name).toBe(`s1/${name}`);
    expect(parsed.digest).toBe(res.headers.get('docker-content-digest'));
    expect(parsed.digest).not.toBe(sha256(body));
    const original = parseSchema1(fixtureManifest(name)).manifest;
    expect(parsed.manifest.fsLayers).toEqual(original.fsLayers);
    const byDigest = await fetch(`http://${registry.host}/v2/s1/${name}/manifests/${parsed.digest}`, {
      headers: { Accept: SIGNED_MEDIA_TYPE },
    });
    expect(byDigest.status).toBe(200);
  });
});
