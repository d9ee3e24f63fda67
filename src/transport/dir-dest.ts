/**
 * skopeo's `dir:` format as a mirror destination: a `version` file, `manifest.json` (the top
 * manifest), blobs named by hex digest, and `HEX.manifest.json` for an index's children. A dir holds
 * one image: after a successful write, blobs and child manifests it no longer references are
 * removed. Blobs already there are kept (content-addressed), unlike skopeo, which empties the
 * directory first, so a re-run writes nothing.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { type Digest, hexOf } from '../digest/index.js';
import { UsageError } from '../errors/index.js';
import type { DirReference } from '../reference/index.js';
import {
  checkManifestDigest,
  type DestinationTraits,
  type ImageDestination,
  type ManifestToWrite,
  readBack,
} from './destination.js';
import { DirSource } from './dir-source.js';
import { writeFileAtomic, writeVerifiedFile } from './local-files.js';
import type { RawManifest } from './source.js';

const VERSION = 'Directory Transport Version: 1.1\n';
const BLOB_NAME = /^[a-f0-9]{64}$/;
const CHILD_MANIFEST_NAME = /^([a-f0-9]{64})\.manifest\.json$/;

export class DirDestination implements ImageDestination {
  readonly traits: DestinationTraits = {
    indexes: true,
    schema1: true,
    layers: 'as-is',
    blobMount: false,
    crossRepoReuse: false,
    existingBlobCheck: true,
  };
  /** Every blob and child manifest the image being written uses: what commit() keeps. */
  private readonly referenced = new Set<string>();

  constructor(readonly reference: DirReference) {}

  private file(name: string): string {
    return path.join(this.reference.dir, name);
  }

  async init(): Promise<void> {
    const dir = this.reference.dir;
    await fsp.mkdir(dir, { recursive: true });
    const entries = await fsp.readdir(dir);
    const version = await fsp.readFile(this.file('version'), 'utf8').catch(() => undefined);
    // Never scribble into (or later prune) a directory that some other tool owns.
    if (entries.length > 0 && version === undefined)
      throw new UsageError(`dir:${dir} is not empty and is not a dir: image (no version file)`, {
        path: dir,
      });
    if (version !== undefined && version !== VERSION)
      throw new UsageError(`dir:${dir} has an unknown version file: ${JSON.stringify(version.trim())}`, {
        path: dir,
      });
    if (version === undefined) await writeFileAtomic(this.file('version'), VERSION);
  }

  existingManifest(): Promise<RawManifest | undefined> {
    return readBack(new DirSource(this.reference), (error) => error.kind === 'not-found');
  }

  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    this.referenced.add(hexOf(digest));
    const stat = await fsp.stat(this.file(hexOf(digest))).catch(() => undefined);
    return stat !== undefined && (size === undefined || stat.size === size);
  }

  putBlob(blob: { digest: Digest; size?: number | undefined }, content: Readable): Promise<void> {
    this.referenced.add(hexOf(blob.digest));
    return writeVerifiedFile(this.file(hexOf(blob.digest)), blob.digest, content, blob.size);
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    checkManifestDigest(manifest);
    if (role === 'child') {
      const name = `${hexOf(manifest.digest)}.manifest.json`;
      this.referenced.add(name);
      await writeFileAtomic(this.file(name), manifest.bytes);
      return;
    }
    await writeFileAtomic(this.file('manifest.json'), manifest.bytes);
  }

  /** Drops what an earlier image left behind and this one does not use. */
  async commit(): Promise<void> {
    for (const name of await fsp.readdir(this.reference.dir)) {
      const ours = BLOB_NAME.test(name) || CHILD_MANIFEST_NAME.test(name);
      if (ours && !this.referenced.has(name)) await fsp.rm(this.file(name), { force: true });
    }
  }

  async close(): Promise<void> {}
}
