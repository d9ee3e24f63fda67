/** skopeo's `dir:` format: manifest.json, blobs named by hex digest, a version file. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Digest, hexOf, sha256 } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import { MAX_MANIFEST_BYTES, parseManifest } from '../manifest/index.js';
import type { DirReference } from '../reference/index.js';
import { LocalBlobSource } from './local-files.js';
import type { ImageSource, RawManifest } from './source.js';

export class DirSource extends LocalBlobSource implements ImageSource {
  constructor(readonly reference: DirReference) {
    super();
  }

  blobPath(digest: Digest): string {
    return path.join(this.reference.dir, hexOf(digest));
  }

  async getManifest(): Promise<RawManifest> {
    const file = path.join(this.reference.dir, 'manifest.json');
    return { bytes: await readBounded(file, this.reference.dir), contentType: undefined };
  }

  /** Per-instance manifests of a list are stored as HEX.manifest.json; the top one may match too. */
  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    const instance = path.join(this.reference.dir, `${hexOf(digest)}.manifest.json`);
    const candidates = [instance, path.join(this.reference.dir, 'manifest.json')];
    for (const file of candidates) {
      const bytes = await readBounded(file, this.reference.dir).catch(() => undefined);
      if (bytes && manifestDigest(bytes) === digest) return { bytes, contentType: undefined };
    }
    throw new NotFoundError(`manifest ${digest} not found in ${this.reference.dir}`, { digest });
  }
}

/** A manifest's digest as registries compute it (schema1: over the payload without signatures). */
function manifestDigest(bytes: Buffer): Digest {
  try {
    return parseManifest(bytes, undefined).digest;
  } catch {
    return sha256(bytes);
  }
}

async function readBounded(file: string, dir: string): Promise<Buffer> {
  const stat = await fsp.stat(file).catch(() => undefined);
  if (!stat) throw new NotFoundError(`${file} not found: not a dir: image`, { path: dir });
  if (stat.size > MAX_MANIFEST_BYTES) {
    throw new VerificationError(
      `${file} is ${stat.size} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`,
      { path: file },
    );
  }
  return fsp.readFile(file);
}
