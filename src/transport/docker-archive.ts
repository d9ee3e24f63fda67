/**
 * `docker-archive:FILE` (the `docker save` format) as a source. The archive holds no manifest:
 * `manifest.json` names each image's config and layer tars, and the manifest is synthesized from
 * them: Docker schema2, layers uncompressed (`...rootfs.diff.tar`) and named by their DiffID, as
 * they are stored. Members are read in place (the file is seekable), so layers can be read whole
 * or by ranges without extracting anything.
 */
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { type Digest, Hasher, sha256 } from '../digest/index.js';
import { NotFoundError, UsageError, VerificationError } from '../errors/index.js';
import {
  type ImageConfig,
  ImageConfigSchema,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  MediaType,
  parseDocument,
} from '../manifest/index.js';
import type { ByteRange, RangeConsumer } from '../ranges/index.js';
import { type DockerArchiveReference, parseRegistryReference } from '../reference/index.js';
import { type ArchiveLayer, archiveManifest } from './archive-manifest.js';
import { readLocalRanges } from './local-files.js';
import type { BlobRef, ImageSource, RawManifest } from './source.js';
import { indexTar, resolveMember, type TarMember } from './tar-archive.js';

/** One image of `manifest.json`; extra fields (LayerSources, Parent) pass through unused. */
const ArchiveEntrySchema = z.looseObject({
  Config: z.string().min(1),
  RepoTags: z.array(z.string()).nullish(),
  Layers: z.array(z.string().min(1)),
});
export const ArchiveManifestSchema = z.array(ArchiveEntrySchema).min(1, 'the archive lists no image');
export type ArchiveEntry = z.infer<typeof ArchiveEntrySchema>;

export { type ArchiveLayer, archiveManifest } from './archive-manifest.js';

/** `name:tag` as Docker and skopeo write it in RepoTags, normalised for comparison. */
export function normalizeRepoTag(name: string): string {
  const ref = parseRegistryReference(name);
  return `${ref.registry}/${ref.repository}:${ref.tag ?? 'latest'}`;
}

interface LoadedImage {
  manifest: Buffer;
  digest: Digest;
  blobs: Map<Digest, TarMember>;
  repoTags: string[];
}

export class DockerArchiveSource implements ImageSource {
  readonly rangeSupport = 'yes' as const;
  private loaded: Promise<LoadedImage> | undefined;

  constructor(readonly reference: DockerArchiveReference) {}

  private load(): Promise<LoadedImage> {
    this.loaded ??= this.loadImage();
    return this.loaded;
  }

  private async loadImage(): Promise<LoadedImage> {
    const file = this.reference.file;
    if (!fs.existsSync(file)) throw new NotFoundError(`docker archive ${file} not found`, { path: file });
    const members = await indexTar(file);
    const handle = await fsp.open(file, 'r');
    try {
      const listing = await readMember(handle, members, 'manifest.json', MAX_MANIFEST_BYTES, file);
      const entries = parseDocument(ArchiveManifestSchema, listing, `${file}: manifest.json`);
      const entry = this.selectImage(entries);
      const configBytes = await readMember(handle, members, entry.Config, MAX_CONFIG_BYTES, file);
      const config = parseDocument(ImageConfigSchema, configBytes, `${file}: config ${entry.Config}`);
      const configDigest = sha256(configBytes);
      const layers = await describeLayers(handle, members, entry, config, file);
      const blobs = new Map<Digest, TarMember>(layers.map((l) => [l.digest, l.member]));
      blobs.set(configDigest, resolveMember(members, entry.Config)!);
      const manifest = archiveManifest({ digest: configDigest, size: configBytes.length }, layers);
      return { manifest, digest: sha256(manifest), blobs, repoTags: entry.RepoTags ?? [] };
    } finally {
      await handle.close();
    }
  }

  /** `@N` picks the N-th image (from 0), a name picks by RepoTags, nothing picks the only one. */
  private selectImage(entries: ArchiveEntry[]): ArchiveEntry {
    const wanted = this.reference.image;
    const file = this.reference.file;
    if (wanted === undefined) {
      if (entries.length === 1) return entries[0]!;
      const names = entries.flatMap((e) => e.RepoTags ?? []);
      throw new UsageError(
        `docker archive ${file} holds ${entries.length} images; name one with docker-archive:FILE:NAME:TAG or :@N${names.length ? ` (${names.join(', ')})` : ''}`,
      );
    }
    const index = /^@(\d+)$/.exec(wanted);
    const found = index
      ? entries[Number(index[1])]
      : entries.find((e) => (e.RepoTags ?? []).some((t) => normalizeRepoTag(t) === normalizeRepoTag(wanted)));
    if (!found) throw new NotFoundError(`no image ${wanted} in docker archive ${file}`, { path: file });
    return found;
  }

  /** The RepoTags of the selected image, as the archive lists them. */
  async repoTags(): Promise<string[]> {
    return (await this.load()).repoTags;
  }

  async getManifest(): Promise<RawManifest> {
    return { bytes: (await this.load()).manifest, contentType: MediaType.dockerManifest };
  }

  async getManifestByDigest(digest: Digest): Promise<RawManifest> {
    const image = await this.load();
    if (digest !== image.digest)
      throw new NotFoundError(`manifest ${digest} not found in ${this.reference.file}`, { digest });
    return { bytes: image.manifest, contentType: MediaType.dockerManifest };
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    return (await this.load()).blobs.get(digest)?.size;
  }

  async openBlob(blob: BlobRef): Promise<Readable> {
    const member = await this.member(blob.digest);
    if (member.size === 0) return Readable.from([]);
    return fs.createReadStream(this.reference.file, {
      start: member.offset,
      end: member.offset + member.size - 1,
      highWaterMark: 1 << 20,
    });
  }

  async fetchRanges(blob: BlobRef, ranges: readonly ByteRange[], onRange: RangeConsumer): Promise<void> {
    const member = await this.member(blob.digest);
    return readLocalRanges(this.reference.file, blob.digest, ranges, onRange, member);
  }

  private async member(digest: Digest): Promise<TarMember> {
    const member = (await this.load()).blobs.get(digest);
    if (!member) throw new NotFoundError(`blob ${digest} not found in ${this.reference.file}`, { digest });
    return member;
  }

  async close(): Promise<void> {}
}

async function readMember(
  handle: FileHandle,
  members: Map<string, TarMember>,
  name: string,
  limit: number,
  file: string,
): Promise<Buffer> {
  const member = resolveMember(members, name);
  if (!member) throw new NotFoundError(`${name} not found in docker archive ${file}`, { path: file });
  if (member.size > limit)
    throw new VerificationError(`${name} in ${file} is ${member.size} bytes, over the ${limit}-byte limit`);
  const bytes = Buffer.alloc(member.size);
  await handle.read(bytes, 0, member.size, member.offset);
  return bytes;
}

/**
 * Layers as stored. An uncompressed tar is named by its DiffID (the config's, checked by whoever
 * reads it); an archive written with compressed layers (some tools do) gets them hashed here.
 */
async function describeLayers(
  handle: FileHandle,
  members: Map<string, TarMember>,
  entry: ArchiveEntry,
  config: ImageConfig,
  file: string,
): Promise<Array<ArchiveLayer & { member: TarMember }>> {
  const diffIDs = config.rootfs.diff_ids;
  if (diffIDs.length !== entry.Layers.length) {
    throw new VerificationError(
      `${file}: config lists ${diffIDs.length} DiffIDs for ${entry.Layers.length} layers`,
    );
  }
  const layers = [];
  for (const [i, name] of entry.Layers.entries()) {
    const member = resolveMember(members, name);
    if (!member) throw new NotFoundError(`layer ${name} not found in docker archive ${file}`, { path: file });
    const magic = Buffer.alloc(Math.min(4, member.size));
    await handle.read(magic, 0, magic.length, member.offset);
    const compression = sniffCompression(magic);
    if (compression === 'none') {
      layers.push({ digest: diffIDs[i]!, size: member.size, mediaType: MediaType.dockerLayer, member });
      continue;
    }
    const mediaType = compression === 'gzip' ? MediaType.dockerLayerGzip : MediaType.ociLayerZstd;
    layers.push({ digest: await hashMember(file, member), size: member.size, mediaType, member });
  }
  return layers;
}

export function sniffCompression(head: Buffer): 'gzip' | 'zstd' | 'none' {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

async function hashMember(file: string, member: TarMember): Promise<Digest> {
  const hasher = new Hasher();
  if (member.size === 0) return hasher.digest();
  const stream = fs.createReadStream(file, { start: member.offset, end: member.offset + member.size - 1 });
  for await (const chunk of stream as AsyncIterable<Buffer>) hasher.update(chunk);
  return hasher.digest();
}
