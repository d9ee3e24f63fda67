/** An OCI image layout directory (image-spec "image-layout") as a source. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Digest, hexOf, sha256 } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import { type Descriptor, IndexSchema, MAX_MANIFEST_BYTES, parseDocument } from '../manifest/index.js';
import type { OciLayoutReference } from '../reference/index.js';
import { LocalBlobSource } from './local-files.js';
import type { ImageSource, RawManifest } from './source.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** cosign's attachment tags and the referrers tag schema's: `sha256-<hex>[.sig|.att|.sbom]`. */
const ATTACHMENT_TAG = /^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$/;

/**
 * Whether an index.json entry is something that refers to an image (a signature, attestation or
 * SBOM, written beside it by `mirror`, `oras attach` or `cosign save`) rather than an image: a
 * layout's "only image" is chosen among the others.
 */
export function isAttachmentEntry(entry: Descriptor): boolean {
  const name = entry.annotations?.[REF_NAME_ANNOTATION];
  return name === undefined ? entry.artifactType !== undefined : ATTACHMENT_TAG.test(name);
}

/** The layout's index.json, parsed; NotFoundError when the directory is not a layout. */
export async function readLayoutIndex(dir: string): Promise<Descriptor[]> {
  const indexPath = path.join(dir, 'index.json');
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(indexPath);
  } catch {
    throw new NotFoundError(`${indexPath} not found: not an OCI image layout`, { path: dir });
  }
  return parseDocument(IndexSchema, bytes, indexPath).manifests;
}

/** A manifest blob of the layout, bounded and checked against its digest. */
export async function readLayoutManifest(dir: string, digest: Digest): Promise<Buffer> {
  const file = path.join(dir, 'blobs', 'sha256', hexOf(digest));
  const stat = await fsp.stat(file).catch(() => undefined);
  if (!stat) throw new NotFoundError(`manifest ${digest} not found in OCI layout ${dir}`, { digest });
  if (stat.size > MAX_MANIFEST_BYTES) {
    throw new VerificationError(
      `manifest ${digest} is ${stat.size} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`,
      { digest },
    );
  }
  const bytes = await fsp.readFile(file);
  if (sha256(bytes) !== digest)
    throw new VerificationError(`manifest ${digest} in ${dir} does not match its digest`, { digest });
  return bytes;
}

export class OciLayoutSource extends LocalBlobSource implements ImageSource {
  /**
   * `select.digest`: the manifest index.json lists under that digest, tagged or not (a referrer that
   * `mirror` carries); otherwise the reference's tag, or the layout's only image.
   */
  constructor(
    readonly reference: OciLayoutReference,
    private readonly select: { digest?: Digest | undefined } = {},
  ) {
    super();
  }

  blobPath(digest: Digest): string {
    return path.join(this.reference.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async getManifest(): Promise<RawManifest> {
    const { dir, tag } = this.reference;
    const manifests = await readLayoutIndex(dir);
    const wanted = this.select.digest;
    const matches = wanted
      ? manifests.filter((m) => m.digest === wanted).slice(0, 1)
      : tag
        ? manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag)
        : manifests.filter((m) => !isAttachmentEntry(m));
    if (matches.length === 0) {
      throw new NotFoundError(
        wanted
          ? `OCI layout ${dir} lists no manifest ${wanted}`
          : `no image tagged "${tag}" in OCI layout ${dir}`,
        { path: dir },
      );
    }
    if (matches.length > 1) {
      const tags = manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter(Boolean);
      throw new UsageError(
        `OCI layout ${dir} holds ${matches.length} images; name one with oci:DIR:TAG${tags.length ? ` (tags: ${tags.join(', ')})` : ''}`,
      );
    }
    const chosen = matches[0]!;
    return { bytes: await readLayoutManifest(dir, chosen.digest), contentType: chosen.mediaType };
  }

  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    return { bytes: await readLayoutManifest(this.reference.dir, digest), contentType: undefined };
  }
}
