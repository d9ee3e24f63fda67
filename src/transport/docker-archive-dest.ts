/**
 * `docker-archive:FILE[:NAME:TAG]` as a mirror destination: writes what `docker save` writes and
 * `docker load` reads: `manifest.json`, the config as `HEX.json`, each layer as an uncompressed
 * `HEX.tar` named by its DiffID. Blobs are staged in a directory beside the file; commit() writes
 * the archive to a temporary file and renames it over FILE, so FILE is either the old archive or
 * the complete new one. An existing archive holding another image is replaced.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, hexOf } from '../digest/index.js';
import { UsageError } from '../errors/index.js';
import { type Descriptor, ImageManifestSchema, parseDocument } from '../manifest/index.js';
import type { DockerArchiveReference } from '../reference/index.js';
import {
  checkManifestDigest,
  type DestinationTraits,
  type ImageDestination,
  type ManifestToWrite,
  readBack,
} from './destination.js';
import { DockerArchiveSource, normalizeRepoTag } from './docker-archive.js';
import { writeVerifiedFile } from './local-files.js';
import type { RawManifest } from './source.js';
import { END_OF_ARCHIVE, fileHeader, padding } from './tar-archive.js';

export class DockerArchiveDestination implements ImageDestination {
  readonly traits: DestinationTraits = {
    indexes: false,
    schema1: false,
    layers: 'uncompressed',
    blobMount: false,
    crossRepoReuse: false,
    existingBlobCheck: true,
  };
  private staging: string | undefined;
  private image: { config: Descriptor; layers: Descriptor[] } | undefined;

  constructor(
    readonly reference: DockerArchiveReference,
    /** RepoTags entry when the reference names none (the source's name). */
    private readonly defaultName?: string,
  ) {
    if (reference.image?.startsWith('@'))
      throw new UsageError(
        `docker-archive destination ${reference.file}: name the image NAME:TAG, not ${reference.image}`,
      );
  }

  private get stagingDir(): string {
    if (!this.staging) throw new Error('DockerArchiveDestination used before init()');
    return this.staging;
  }

  async init(): Promise<void> {
    const dir = path.dirname(this.reference.file);
    await fsp.mkdir(dir, { recursive: true });
    this.staging = await fsp.mkdtemp(path.join(dir, '.skiff-archive-'));
  }

  /** The image the archive holds now, read back as a source would read it. */
  async existingManifest(): Promise<RawManifest | undefined> {
    if (!fs.existsSync(this.reference.file)) return undefined;
    // Not an archive we can read, or it holds other images: it will be replaced.
    return readBack(new DockerArchiveSource(this.reference), () => true);
  }

  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    const stat = await fsp.stat(path.join(this.stagingDir, hexOf(digest))).catch(() => undefined);
    return stat !== undefined && (size === undefined || stat.size === size);
  }

  putBlob(blob: { digest: Digest; size?: number | undefined }, content: Readable): Promise<void> {
    return writeVerifiedFile(path.join(this.stagingDir, hexOf(blob.digest)), blob.digest, content, blob.size);
  }

  async putManifest(manifest: ManifestToWrite, role: 'child' | 'top'): Promise<void> {
    checkManifestDigest(manifest);
    if (role === 'child') throw new UsageError('a docker archive holds single images, not an index');
    const parsed = parseDocument(ImageManifestSchema, manifest.bytes, `manifest ${manifest.digest}`);
    this.image = { config: parsed.config, layers: parsed.layers };
  }

  async commit(): Promise<void> {
    const image = this.image;
    if (!image) throw new Error('DockerArchiveDestination.commit() before putManifest()');
    const file = this.reference.file;
    const temp = path.join(this.stagingDir, 'archive.tar');
    await pipeline(Readable.from(this.archiveStream(image)), fs.createWriteStream(temp));
    await fsp.rename(temp, file);
  }

  private async *archiveStream(image: { config: Descriptor; layers: Descriptor[] }): AsyncGenerator<Buffer> {
    const layerNames: string[] = [];
    const written = new Set<Digest>();
    for (const layer of image.layers) {
      layerNames.push(`${hexOf(layer.digest)}.tar`);
      if (written.has(layer.digest)) continue;
      written.add(layer.digest);
      yield* this.stagedMember(`${hexOf(layer.digest)}.tar`, layer.digest);
    }
    const configName = `${hexOf(image.config.digest)}.json`;
    yield* this.stagedMember(configName, image.config.digest);
    const listing = [{ Config: configName, RepoTags: this.repoTags(), Layers: layerNames }];
    yield* member('manifest.json', Buffer.from(JSON.stringify(listing)));
    yield END_OF_ARCHIVE;
  }

  private async *stagedMember(name: string, digest: Digest): AsyncGenerator<Buffer> {
    const file = path.join(this.stagingDir, hexOf(digest));
    const { size } = await fsp.stat(file);
    yield fileHeader(name, size);
    yield* fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
    yield padding(size);
  }

  private repoTags(): string[] {
    const name = this.reference.image ?? this.defaultName;
    return name ? [normalizeRepoTag(name)] : [];
  }

  async close(): Promise<void> {
    if (this.staging) await fsp.rm(this.staging, { recursive: true, force: true });
    this.staging = undefined;
  }
}

function* member(name: string, content: Buffer): Generator<Buffer> {
  yield fileHeader(name, content.length);
  yield content;
  yield padding(content.length);
}
