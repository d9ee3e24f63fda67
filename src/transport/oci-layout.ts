/** An OCI image layout directory (image-spec "image-layout") as a source. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Digest, hexOf, sha256 } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import { IndexSchema, MAX_MANIFEST_BYTES, parseDocument } from '../manifest/index.js';
import type { OciLayoutReference } from '../reference/index.js';
import { LocalBlobSource } from './local-files.js';
import type { ImageSource, RawManifest } from './source.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export class OciLayoutSource extends LocalBlobSource implements ImageSource {
  constructor(readonly reference: OciLayoutReference) {
    super();
  }

  blobPath(digest: Digest): string {
    return path.join(this.reference.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async getManifest(): Promise<RawManifest> {
    const indexPath = path.join(this.reference.dir, 'index.json');
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(indexPath);
    } catch {
      throw new NotFoundError(`${indexPath} not found: not an OCI image layout`, {
        path: this.reference.dir,
      });
    }
    const index = parseDocument(IndexSchema, bytes, indexPath);
    const tag = this.reference.tag;
    const matches = tag
      ? index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag)
      : index.manifests;
    if (matches.length === 0) {
      throw new NotFoundError(`no image tagged "${tag}" in OCI layout ${this.reference.dir}`, {
        path: this.reference.dir,
      });
    }
    if (matches.length > 1) {
      const tags = index.manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter(Boolean);
      throw new UsageError(
        `OCI layout ${this.reference.dir} holds ${matches.length} images; name one with oci:DIR:TAG${tags.length ? ` (tags: ${tags.join(', ')})` : ''}`,
      );
    }
    const chosen = matches[0]!;
    return { bytes: await this.readVerified(chosen.digest), contentType: chosen.mediaType };
  }

  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    return { bytes: await this.readVerified(digest), contentType: undefined };
  }

  private async readVerified(digest: Digest): Promise<Buffer> {
    const file = this.blobPath(digest);
    const stat = await fsp.stat(file).catch(() => undefined);
    if (!stat)
      throw new NotFoundError(`manifest ${digest} not found in OCI layout ${this.reference.dir}`, { digest });
    if (stat.size > MAX_MANIFEST_BYTES) {
      throw new VerificationError(
        `manifest ${digest} is ${stat.size} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`,
        { digest },
      );
    }
    const bytes = await fsp.readFile(file);
    if (sha256(bytes) !== digest)
      throw new VerificationError(`manifest ${digest} in ${this.reference.dir} does not match its digest`, {
        digest,
      });
    return bytes;
  }
}
