/**
 * reference → manifest: fetches the manifest the reference names, selects the platform from an
 * index (deterministically), verifies every digest on the way, and fetches the config. The result
 * lists the layers to pull with the DiffIDs the publisher committed to (none for schema1).
 */
import { type Digest, sha256 } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import {
  type Descriptor,
  formatPlatform,
  type ImageConfig,
  ImageConfigSchema,
  type ImageManifestDocument,
  isAttestation,
  MAX_CONFIG_BYTES,
  normalizePlatform,
  type Platform,
  parseDocument,
  parseManifest,
  type Schema1Document,
  selectPlatform,
} from '../manifest/index.js';
import { schema1Layers, schema1NonEmptyLayers } from '../manifest/schema1.js';
import type { ImageSource } from '../transport/index.js';
import { fetchManifestByDigest } from '../transport/manifests.js';

export interface ResolvedLayer {
  index: number;
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string> | undefined;
  urls?: string[] | undefined;
  /** The DiffID the config commits to; undefined for schema1 (computed while pulling). */
  diffID: Digest | undefined;
}

export interface ResolvedImage {
  manifest: ImageManifestDocument | Schema1Document;
  /** The index the manifest was selected from, if any. */
  index?: { digest: Digest; mediaType: string } | undefined;
  platform: Platform;
  /** The config (not for schema1: it is built from the manifest once DiffIDs are known). */
  config?: { digest: Digest; bytes: Buffer; parsed: ImageConfig; mediaType: string } | undefined;
  layers: ResolvedLayer[];
  /** A warning for the user (e.g. the only platform offered is not the one asked for). */
  warnings: string[];
}

export interface ResolveOptions {
  platform: Platform;
  /** The user asked for this platform explicitly (--platform), rather than the host's default. */
  explicitPlatform: boolean;
  /** A digest the reference pins; the top-level manifest must hash to it. */
  pinnedDigest?: Digest | undefined;
  signal?: AbortSignal;
}

export async function resolveImage(source: ImageSource, options: ResolveOptions): Promise<ResolvedImage> {
  const raw = await source.getManifest(options.signal);
  let doc = parseManifest(raw.bytes, raw.contentType);
  if (options.pinnedDigest && doc.digest !== options.pinnedDigest) {
    throw new VerificationError(
      `manifest digest mismatch: the reference pins ${options.pinnedDigest}, the source served ${doc.digest}`,
      {
        digest: options.pinnedDigest,
      },
    );
  }
  let index: ResolvedImage['index'];
  if (doc.kind === 'index') {
    index = { digest: doc.digest, mediaType: doc.mediaType };
    const chosen = selectPlatform(
      doc.manifests.filter((m) => !isAttestation(m)),
      options.platform,
      `index ${doc.digest}`,
    );
    doc = await fetchManifestByDigest(source, chosen, options.signal);
  }
  if (doc.kind === 'index')
    throw new VerificationError(
      `index ${index?.digest} points at another index ${doc.digest}; nested indexes are not supported`,
    );
  const warnings: string[] = [];
  if (doc.kind === 'schema1') return resolveSchema1(source, doc, index, options, warnings);
  const config = await fetchConfig(source, doc.config, options.signal);
  const diffIDs = config.parsed.rootfs.diff_ids;
  if (diffIDs.length !== doc.layers.length) {
    throw new VerificationError(
      `config ${doc.config.digest} lists ${diffIDs.length} DiffIDs for ${doc.layers.length} layers`,
      {
        digest: doc.config.digest,
      },
    );
  }
  const platform = normalizePlatform({
    os: config.parsed.os ?? 'linux',
    architecture: config.parsed.architecture ?? 'amd64',
    ...(config.parsed.variant ? { variant: config.parsed.variant } : {}),
  });
  if (!index) warnIfOtherPlatform(platform, options, warnings);
  return {
    manifest: doc,
    index,
    platform,
    config,
    layers: doc.layers.map((layer, i) => toResolvedLayer(layer, i, diffIDs[i]!)),
    warnings,
  };
}

async function resolveSchema1(
  source: ImageSource,
  doc: Schema1Document,
  index: ResolvedImage['index'],
  options: ResolveOptions,
  warnings: string[],
): Promise<ResolvedImage> {
  const m = doc.schema1.manifest;
  const layers = schema1NonEmptyLayers(m);
  const sizes = await Promise.all(layers.map((l) => source.blobSize(l.blobSum, options.signal)));
  // The newest history entry (throwaway or not) describes the image, as in the converted config.
  const top = schema1Layers(m).at(-1)?.v1;
  const platform = normalizePlatform({
    os: top?.os || 'linux',
    architecture: top?.architecture || m.architecture || 'amd64',
    ...(top?.variant ? { variant: top.variant } : {}),
  });
  if (!index) warnIfOtherPlatform(platform, options, warnings);
  return {
    manifest: doc,
    index,
    platform,
    layers: layers.map((layer, i) => {
      const size = sizes[i];
      if (size === undefined)
        throw new NotFoundError(`layer ${layer.blobSum} of the schema1 manifest is missing from the source`, {
          digest: layer.blobSum,
        });
      return {
        index: i,
        digest: layer.blobSum,
        size,
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
        diffID: undefined,
      };
    }),
    warnings,
  };
}

async function fetchConfig(source: ImageSource, descriptor: Descriptor, signal?: AbortSignal) {
  if (descriptor.size > MAX_CONFIG_BYTES) {
    throw new VerificationError(
      `config ${descriptor.digest} is ${descriptor.size} bytes, more than the ${MAX_CONFIG_BYTES}-byte limit`,
      {
        digest: descriptor.digest,
      },
    );
  }
  const stream = await source.openBlob(descriptor, signal);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > descriptor.size) {
      stream.destroy();
      break;
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  const actual = sha256(bytes);
  if (bytes.length !== descriptor.size || actual !== descriptor.digest) {
    throw new VerificationError(`config digest mismatch: expected ${descriptor.digest}, got ${actual}`, {
      digest: descriptor.digest,
    });
  }
  const parsed = parseDocument(ImageConfigSchema, bytes, `config ${descriptor.digest}`);
  return { digest: descriptor.digest, bytes, parsed, mediaType: descriptor.mediaType };
}

function toResolvedLayer(layer: Descriptor, index: number, diffID: Digest): ResolvedLayer {
  return {
    index,
    digest: layer.digest,
    size: layer.size,
    mediaType: layer.mediaType,
    annotations: layer.annotations,
    urls: layer.urls,
    diffID,
  };
}

function warnIfOtherPlatform(actual: Platform, options: ResolveOptions, warnings: string[]): void {
  const wanted = normalizePlatform(options.platform);
  if (!options.explicitPlatform) return;
  if (actual.os !== wanted.os || actual.architecture !== wanted.architecture) {
    warnings.push(
      `the image is for ${formatPlatform(actual)}, not the requested ${formatPlatform(wanted)} (it has no index to choose from)`,
    );
  }
}
