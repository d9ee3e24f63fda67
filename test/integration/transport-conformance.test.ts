// Issue 12: every transport passes one conformance suite (test/harness/transport-conformance.ts).
// Sources are filled by tools other than the code under test: skopeo for the registry, dir: and
// docker-archive:, the seed layout itself for oci: and the in-memory transport, and `skiff pull`
// for the store. Six transports: registry, oci, dir, docker-archive, store, memory.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { parseReference } from '../../src/reference/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { openDestination, openSource } from '../../src/transport/index.js';
import { runCli, tempDir } from '../harness/cli.js';
import { MemoryDestination, MemoryRegistry, MemorySource } from '../harness/memory-transport.js';
import {
  describeTransportConformance,
  makeTestImage,
  type Seed,
  uniqueName,
  writeSeedLayout,
} from '../harness/transport-conformance.js';

const execFileAsync = promisify(execFile);
const registry = inject('registry');
const client = new RegistryClient({ retry: { retries: 0, minDelayMs: 0 } });
const work = tempDir('skiff-conformance-');

afterAll(async () => {
  await client.close();
  work.cleanup();
});

const fresh = (what: string) => path.join(work.dir, uniqueName(what));

/** The seed as an OCI layout on disk, and its reference. */
function seedLayout(seed: Seed): string {
  const dir = fresh('seed');
  writeSeedLayout(dir, seed, 'v1');
  return `oci:${dir}:v1`;
}

async function skopeoCopy(seed: Seed, destination: string): Promise<void> {
  const all = seed.kind === 'index' ? ['--all'] : [];
  // A docker archive rewrites the manifest (as Docker schema 2): digests cannot be preserved.
  const preserve = destination.startsWith('docker-archive:') ? [] : ['--preserve-digests'];
  await execFileAsync('skopeo', [
    'copy',
    '-q',
    '--dest-tls-verify=false',
    ...preserve,
    ...all,
    seedLayout(seed),
    destination,
  ]);
}

const open = (text: string) => openSource(parseReference(text), client);
const destination = async (text: string) => {
  const ref = parseReference(text);
  return {
    destination: await openDestination(ref, client),
    readBack: () => openSource(ref, client),
    again: () => openDestination(ref, client),
  };
};

describeTransportConformance('registry (docker://)', () => ({
  source: {
    manifests: 'preserved',
    indexes: 'preserved',
    async open(seed) {
      const ref = `docker://${registry}/conformance/${uniqueName('src')}:v1`;
      await skopeoCopy(seed, ref);
      return open(ref);
    },
  },
  destination: {
    manifests: 'preserved',
    visibleAt: 'manifest',
    fresh: async () => destination(`docker://${registry}/conformance/${uniqueName('dst')}:v1`),
  },
}));

describeTransportConformance('OCI layout (oci:)', () => ({
  source: {
    manifests: 'preserved',
    indexes: 'preserved',
    open: async (seed) => open(seedLayout(seed)),
  },
  destination: {
    manifests: 'preserved',
    visibleAt: 'manifest',
    fresh: async () => destination(`oci:${fresh('oci')}:v1`),
  },
}));

describeTransportConformance('skopeo directory (dir:)', () => ({
  source: {
    manifests: 'preserved',
    indexes: 'preserved',
    async open(seed) {
      const dir = fresh('dir');
      await skopeoCopy(seed, `dir:${dir}`);
      return open(`dir:${dir}`);
    },
  },
  destination: {
    manifests: 'preserved',
    visibleAt: 'manifest',
    fresh: async () => destination(`dir:${fresh('dir')}`),
  },
}));

describeTransportConformance('docker archive (docker-archive:)', () => ({
  source: {
    // The archive keeps no manifest: one is rebuilt from its config and layers.
    manifests: 'rebuilt',
    async open(seed) {
      const file = `${fresh('archive')}.tar`;
      await skopeoCopy(seed, `docker-archive:${file}:conformance/app:v1`);
      return open(`docker-archive:${file}`);
    },
  },
  destination: {
    manifests: 'rebuilt',
    visibleAt: 'commit',
    fresh: async () => destination(`docker-archive:${fresh('archive')}.tar`),
  },
}));

describeTransportConformance('skiff store (store:)', () => {
  const store = fresh('store');
  return {
    source: {
      // Uncompressed layers are the stored tars: the manifest is served as pulled.
      manifests: 'preserved',
      // The store keeps images, not indexes: a name of several platforms is served as a new index.
      indexes: 'rebuilt',
      async open(seed) {
        const layout = seedLayout(seed);
        const platforms =
          seed.kind === 'index' ? seed.index.images.map((i) => `linux/${i.platform.architecture}`) : [''];
        for (const platform of platforms) {
          const flags = platform ? ['--platform', platform] : [];
          const pulled = await runCli(['pull', layout, '--store', store, ...flags]);
          if (pulled.code !== 0) throw new Error(`skiff pull ${layout} failed: ${pulled.stderr}`);
        }
        return open(`store:[${store}]${layout}`);
      },
    },
    // A copy into the store is a pull: nothing is visible before commit (docs/design.md §12).
    destination: {
      manifests: 'preserved',
      visibleAt: 'commit',
      fresh: async () => destination(`store:[${fresh('store')}]conformance/app:v1`),
    },
  };
});

describeTransportConformance('memory (test/harness/memory-transport.ts)', () => {
  const memory = new MemoryRegistry('memory.test');
  const at = (repository: string) => memory.reference(repository, 'v1');
  return {
    source: {
      manifests: 'preserved',
      indexes: 'preserved',
      async open(seed) {
        const repository = uniqueName('src');
        const dir = fresh('seed');
        writeSeedLayout(dir, seed, 'v1');
        memory.loadLayout(dir, repository);
        return new MemorySource(memory, at(repository));
      },
    },
    destination: {
      manifests: 'preserved',
      visibleAt: 'manifest',
      async fresh() {
        const reference = at(uniqueName('dst'));
        return {
          destination: new MemoryDestination(memory, reference),
          readBack: () => new MemorySource(memory, reference),
          again: () => new MemoryDestination(memory, reference),
        };
      },
    },
  };
});

describe('store: as a source, proven as it streams', () => {
  it('fails the stream of a layer that no longer rebuilds to its DiffID', async () => {
    const store = fresh('store');
    const image = makeTestImage(uniqueName('damaged'));
    const layout = seedLayout({ kind: 'image', image });
    expect((await runCli(['pull', layout, '--store', store])).code).toBe(0);
    // Flip bytes of every stored file content (packed or loose): each rebuilt tar changes.
    const objects = fs
      .readdirSync(store, { recursive: true, withFileTypes: true })
      .filter((f) => f.isFile() && /\/(packs|objects\/sha256\/[a-f0-9]{2})$/.test(f.parentPath))
      .filter((f) => !f.name.endsWith('.idx'));
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      const file = path.join(object.parentPath, object.name);
      const bytes = fs.readFileSync(file);
      fs.chmodSync(file, 0o644);
      // Every 1000th byte: a pack holds many objects, each must change.
      for (let i = 500; i < bytes.length; i += 1000) bytes[i]! ^= 0xff;
      fs.writeFileSync(file, bytes);
    }
    const source = await open(`store:[${store}]${layout}`);
    try {
      for (const layer of image.layers) {
        const reading = source
          .openBlob({ digest: layer.digest, size: layer.bytes.length })
          .then(async (stream) => {
            for await (const _ of stream);
          });
        await expect(reading).rejects.toThrow(/rebuilt from the store.*digest mismatch/);
      }
    } finally {
      await source.close();
    }
  });
});
