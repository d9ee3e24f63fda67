/**
 * Writing an OCI image layout: blobs verified against their digest as they are written (temp file
 * + rename), then the manifest, then index.json, replaced atomically. Re-writing a blob that is
 * already there is skipped by callers through hasBlob.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { type Digest, hexOf, sha256 } from '../digest/index.js';
import { type Descriptor, IndexSchema, MediaType, parseDocument } from '../manifest/index.js';
import { writeFileAtomic, writeVerifiedFile } from './local-files.js';
import { REF_NAME_ANNOTATION } from './oci-layout.js';

export class OciLayoutDestination {
  constructor(
    readonly dir: string,
    readonly tag: string | undefined,
  ) {}

  async init(): Promise<void> {
    await fsp.mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const layoutFile = path.join(this.dir, 'oci-layout');
    if (!fs.existsSync(layoutFile)) await fsp.writeFile(layoutFile, '{"imageLayoutVersion":"1.0.0"}');
  }

  blobPath(digest: Digest): string {
    return path.join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    const stat = await fsp.stat(this.blobPath(digest)).catch(() => undefined);
    return stat !== undefined && (size === undefined || stat.size === size);
  }

  /** Writes a blob from a stream, failing (and writing nothing) unless it hashes to `digest`. */
  putBlob(digest: Digest, content: Readable | Buffer, size?: number): Promise<void> {
    return writeVerifiedFile(this.blobPath(digest), digest, content, size);
  }

  /** Writes the manifest blob and points the tag (or an untagged entry) at it in index.json. */
  async putManifest(bytes: Buffer, mediaType: string, extra: Partial<Descriptor> = {}): Promise<Descriptor> {
    const digest = sha256(bytes);
    await this.putBlob(digest, bytes);
    const descriptor: Descriptor = {
      mediaType,
      digest,
      size: bytes.length,
      ...extra,
      ...(this.tag ? { annotations: { ...extra.annotations, [REF_NAME_ANNOTATION]: this.tag } } : {}),
    };
    const indexPath = path.join(this.dir, 'index.json');
    const existing = fs.existsSync(indexPath)
      ? parseDocument(IndexSchema, await fsp.readFile(indexPath), indexPath)
      : undefined;
    const others = (existing?.manifests ?? []).filter((m) =>
      this.tag ? m.annotations?.[REF_NAME_ANNOTATION] !== this.tag : m.digest !== digest,
    );
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...others, descriptor] };
    await writeFileAtomic(indexPath, `${JSON.stringify(index)}\n`);
    return descriptor;
  }
}
