/**
 * reference → manifest or index → platform(s) → config → layers, written once for every copy
 * (`pull`, `mirror`, `inspect`): the pinned-digest check, the platform choice from an index, the
 * bounded and verified config read, the DiffID-count check and schema1's layer sizing. Every
 * document read is checked against the digest that names it.
 */
import pLimit from 'p-limit';
import { type Digest, sha256 } from '../digest/index.js';
import { NotFoundError, VerificationError } from '../errors/index.js';
import {
  type Descriptor,
  formatPlatform,
  type ImageConfig,
  ImageConfigSchema,
  type ImageManifestDocument,
  type IndexDocument,
  isAttestation,
  MAX_CONFIG_BYTES,
  type ManifestDocument,
  normalizePlatform,
  type Platform,
  parseDocument,
  parseManifest,
  type Schema1Document,
  selectPlatform,
} from '../manifest/index.js';
import { type Schema1Layer, schema1Layers, schema1NonEmptyLayers } from '../manifest/schema1.js';
import type { ImageReference } from '../reference/index.js';
import type { ImageSource } from '../transport/index.js';
import { fetchManifestByDigest } from '../transport/manifests.js';

export interface ResolvedLayer {
  index: number;
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string> | undefined;
  urls?: string[] | undefined;
  /** The DiffID the config commits to; undefined for schema1 (computed while copying). */
  diffID: Digest | undefined;
}

export interface ResolvedConfig {
  digest: Digest;
  bytes: Buffer;
  parsed: ImageConfig;
  mediaType: string;
}

export interface ResolvedImage {
  manifest: ImageManifestDocument | Schema1Document;
  /** The index the manifest was selected from, if any. */
  index?: { digest: Digest; mediaType: string } | undefined;
  platform: Platform;
  /** The config (not for schema1: it is built from the manifest once DiffIDs are known). */
  config?: ResolvedConfig | undefined;
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
  signal?: AbortSignal | undefined;
}

/** The digest a reference pins, which the top-level manifest must hash to (registries only). */
export function pinnedDigestOf(reference: ImageReference): Digest | undefined {
  return reference.transport === 'docker' ? reference.digest : undefined;
}

/** The document the reference names, checked against the digest the reference pins. */
export async function readTopManifest(
  source: ImageSource,
  pinnedDigest: Digest | undefined,
  signal?: AbortSignal,
): Promise<ManifestDocument> {
  const raw = await source.getManifest(signal);
  const doc = parseManifest(raw.bytes, raw.contentType);
  if (pinnedDigest && doc.digest !== pinnedDigest) {
    throw new VerificationError(
      `manifest digest mismatch: the reference pins ${pinnedDigest}, the source served ${doc.digest}`,
      { digest: pinnedDigest },
    );
  }
  return doc;
}

/**
 * The image an index offers for `platform` (deterministically; attestations are never chosen).
 * `nestedHint` ends the message refusing an index that points at another index.
 */
export async function choosePlatformImage(
  source: ImageSource,
  index: IndexDocument,
  platform: Platform,
  nestedHint: string,
  signal?: AbortSignal,
): Promise<ImageManifestDocument | Schema1Document> {
  const chosen = selectPlatform(
    index.manifests.filter((m) => !isAttestation(m)),
    platform,
    `index ${index.digest}`,
  );
  const doc = await fetchManifestByDigest(source, chosen, signal);
  if (doc.kind === 'index')
    throw new VerificationError(`index ${index.digest} points at another index ${doc.digest}; ${nestedHint}`);
  return doc;
}

/** One image, from a manifest or an index's choice for the platform (pull, inspect). */
export async function resolveImage(source: ImageSource, options: ResolveOptions): Promise<ResolvedImage> {
  const top = await readTopManifest(source, options.pinnedDigest, options.signal);
  let index: ResolvedImage['index'];
  let doc: ImageManifestDocument | Schema1Document;
  if (top.kind === 'index') {
    index = { digest: top.digest, mediaType: top.mediaType };
    doc = await choosePlatformImage(
      source,
      top,
      options.platform,
      'nested indexes are not supported',
      options.signal,
    );
  } else doc = top;
  const warnings: string[] = [];
  if (doc.kind === 'schema1') return resolveSchema1(source, doc, index, options, warnings);
  const config = await fetchConfig(source, doc.config, options.signal);
  const diffIDs = checkDiffIDCount(doc, config);
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
  const layers = await schema1SizedLayers(source, doc, options.signal);
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
    layers: layers.map((layer, i) => ({
      index: i,
      digest: layer.digest,
      size: layer.size,
      mediaType: layer.mediaType,
      diffID: undefined,
    })),
    warnings,
  };
}

/**
 * A schema1 manifest's non-empty layers as descriptors: it states no sizes, so each is asked of
 * the source (a layer the source lacks is exit 2). Its compression is not stated either: gzip is
 * what schema1 publishers wrote, and readers sniff it.
 */
export async function schema1SizedLayers(
  source: ImageSource,
  doc: Schema1Document,
  signal?: AbortSignal,
): Promise<Descriptor[]> {
  const layers: Schema1Layer[] = schema1NonEmptyLayers(doc.schema1.manifest);
  const sizes = await Promise.all(layers.map((l) => source.blobSize(l.blobSum, signal)));
  return layers.map((layer, i) => {
    const size = sizes[i];
    if (size === undefined)
      throw new NotFoundError(`layer ${layer.blobSum} of the schema1 manifest is missing from the source`, {
        digest: layer.blobSum,
      });
    return { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layer.blobSum, size };
  });
}

/** The config, read up to its stated size (never more), verified and parsed. */
export async function fetchConfig(
  source: ImageSource,
  descriptor: Descriptor,
  signal?: AbortSignal,
): Promise<ResolvedConfig> {
  if (descriptor.size > MAX_CONFIG_BYTES) {
    throw new VerificationError(
      `config ${descriptor.digest} is ${descriptor.size} bytes, more than the ${MAX_CONFIG_BYTES}-byte limit`,
      { digest: descriptor.digest },
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
  if (size !== descriptor.size || actual !== descriptor.digest) {
    throw new VerificationError(`config digest mismatch: expected ${descriptor.digest}, got ${actual}`, {
      digest: descriptor.digest,
    });
  }
  const parsed = parseDocument(ImageConfigSchema, bytes, `config ${descriptor.digest}`);
  return { digest: descriptor.digest, bytes, parsed, mediaType: descriptor.mediaType };
}

/** The config's DiffIDs, one per layer of the manifest, or a verification failure. */
export function checkDiffIDCount(doc: ImageManifestDocument, config: ResolvedConfig): Digest[] {
  const diffIDs = config.parsed.rootfs.diff_ids;
  if (diffIDs.length !== doc.layers.length) {
    throw new VerificationError(
      `config ${doc.config.digest} lists ${diffIDs.length} DiffIDs for ${doc.layers.length} layers`,
      { digest: doc.config.digest },
    );
  }
  return diffIDs;
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

// ---- whole trees (mirror --all) ----

export interface ImageNode {
  kind: 'image';
  doc: ImageManifestDocument | Schema1Document;
}

export interface IndexNode {
  kind: 'index';
  doc: IndexDocument;
  /** In the index's order. */
  children: SourceTree[];
}

/** What a copy takes from the source: one image, or a whole index with its children. */
export type SourceTree = ImageNode | IndexNode;

const MAX_INDEX_DEPTH = 3;

/** The whole index with `all`, otherwise one image (an index's platform chosen as `pull` chooses it). */
export async function readSourceTree(
  source: ImageSource,
  reference: ImageReference,
  options: { all: boolean; platform: Platform; signal?: AbortSignal | undefined },
): Promise<SourceTree> {
  const doc = await readTopManifest(source, pinnedDigestOf(reference), options.signal);
  if (doc.kind !== 'index') return { kind: 'image', doc };
  if (options.all) return readIndex(source, doc, 1, options.signal);
  const child = await choosePlatformImage(
    source,
    doc,
    options.platform,
    'use --all to copy it',
    options.signal,
  );
  return { kind: 'image', doc: child };
}

async function readIndex(
  source: ImageSource,
  doc: IndexDocument,
  depth: number,
  signal?: AbortSignal,
): Promise<IndexNode> {
  if (depth > MAX_INDEX_DEPTH)
    throw new VerificationError(`indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  const limit = pLimit(4);
  const children = await Promise.all(
    doc.manifests.map((descriptor) =>
      limit(async (): Promise<SourceTree> => {
        const child = await fetchManifestByDigest(source, descriptor, signal);
        return child.kind === 'index'
          ? readIndex(source, child, depth + 1, signal)
          : { kind: 'image', doc: child };
      }),
    ),
  );
  return { kind: 'index', doc, children };
}
