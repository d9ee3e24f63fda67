/**
 * `skiff inspect`: what an image is, locally or at its source: manifest kind, the platforms an
 * index offers, and per layer the media type and the format skiff detects (chunked? encrypted?).
 */

import { pinnedDigestOf, resolveImage } from '../copy/resolve.js';
import { type Digest, sha256 } from '../digest/index.js';
import { UsageError, VerificationError } from '../errors/index.js';
import { detectLayerFormat, type ReportFormat } from '../formats/detect.js';
import { readEncryptionInfo } from '../formats/encryption/index.js';
import { type FoundImage, findImage } from '../images/index.js';
import {
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  ImageConfigSchema,
  normalizePlatform,
  parseDocument,
  parseManifest,
  parsePlatform,
} from '../manifest/index.js';
import { formatReference, parseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { Store } from '../store/index.js';
import { type ImageFacts, wantsToc } from '../strategy/index.js';
import { openSource } from '../transport/index.js';
import { type ChunkedDescription, describeChunked } from './chunked.js';

export type ManifestKind =
  | 'oci-index'
  | 'docker-manifest-list'
  | 'oci-manifest'
  | 'docker-schema2'
  | 'docker-schema1';

export interface LayerDescription {
  digest: Digest;
  size: number;
  mediaType: string;
  format: ReportFormat;
  diffID?: Digest | undefined;
  chunked?: ChunkedDescription | undefined;
  encryption?:
    | {
        cipher: string;
        recipients: Array<{ algorithm: string; keyType: string; curve?: string | undefined }>;
      }
    | undefined;
}

export interface InspectReport {
  reference: string;
  location: 'store' | 'source';
  manifestKind: ManifestKind;
  manifestDigest: Digest;
  indexDigest?: Digest | undefined;
  /** The platforms an index offers, in index order. */
  platforms?: string[] | undefined;
  platform: string;
  configDigest?: Digest | undefined;
  created?: string | undefined;
  config?: ImageConfig['config'] | undefined;
  names?: string[] | undefined;
  layers: LayerDescription[];
}

export interface InspectOptions {
  platform?: string | undefined;
  /** Look at the source even when the store has the image. */
  remote?: boolean;
  /** Fetch chunked layers' TOCs to count entries and check them. */
  toc?: boolean;
}

/** Describes `text` from the store (if given and holding it, unless `remote`), else at its source. */
export async function inspect(
  store: Store | undefined,
  client: RegistryClient,
  text: string,
  options: InspectOptions = {},
): Promise<InspectReport> {
  if (store && !options.remote) {
    const local = await inspectLocal(store, text, options.platform).catch(() => undefined);
    if (local) return local;
  }
  return inspectSource(client, text, options);
}

export type RawDocument = 'manifest' | 'config';

/**
 * The bytes of an image's manifest or config exactly as they were served (`inspect --raw`,
 * `--config`). At the source, the manifest is the document REF names (an index, for a multi-arch
 * tag) unless a platform is asked for; in the store, the manifest the image was pulled through.
 */
export async function inspectRaw(
  store: Store | undefined,
  client: RegistryClient,
  text: string,
  what: RawDocument,
  options: InspectOptions = {},
): Promise<Buffer> {
  if (store && !options.remote) {
    const found = await findImage(store, text, options.platform).catch(() => undefined);
    if (found)
      return what === 'config'
        ? store.readImageConfig(found.configDigest)
        : (await storedManifest(store, found)).bytes;
  }
  const reference = parseReference(text);
  const source = await openSource(reference, client);
  try {
    const pinnedDigest = pinnedDigestOf(reference);
    if (what === 'manifest' && options.platform === undefined) {
      const raw = await source.getManifest();
      if (pinnedDigest && sha256(raw.bytes) !== pinnedDigest)
        throw new VerificationError(`manifest of ${text} does not hash to ${pinnedDigest}`, { image: text });
      return raw.bytes;
    }
    const resolved = await resolveImage(source, {
      platform: options.platform ? parsePlatform(options.platform) : hostPlatform(),
      explicitPlatform: options.platform !== undefined,
      pinnedDigest,
    });
    if (what === 'manifest') return resolved.manifest.bytes;
    if (!resolved.config)
      throw new UsageError(`${text}: a schema1 manifest has no config document`, { image: text });
    return resolved.config.bytes;
  } finally {
    await source.close();
  }
}

/** The manifest a found image was pulled through: its name's, else the first by digest. */
async function storedManifest(store: Store, found: FoundImage) {
  const manifests = await store.readImageManifests(found.configDigest);
  return manifests.find((m) => m.record.digest === found.name?.manifestDigest) ?? manifests[0]!;
}

async function inspectLocal(
  store: Store,
  text: string,
  platform: string | undefined,
): Promise<InspectReport> {
  const found = await findImage(store, text, platform);
  const chosen = await storedManifest(store, found);
  const doc = parseManifest(chosen.bytes, chosen.record.mediaType);
  const config = parseDocument(ImageConfigSchema, await store.readImageConfig(found.configDigest), 'config');
  const names = [
    ...new Set(
      (await store.listNames()).filter((n) => n.configDigest === found.configDigest).map((n) => n.name),
    ),
  ];
  return {
    reference: text,
    location: 'store',
    manifestKind: kindOf(doc.mediaType),
    manifestDigest: chosen.record.digest,
    platform: formatPlatform(found.record.platform),
    configDigest: found.configDigest,
    created: config.created,
    config: config.config,
    names: names.sort(),
    layers: chosen.record.layers.map((l, i) =>
      describeLayer({ ...l, annotations: annotationsOf(doc, i) }, l.diffID),
    ),
  };
}

async function inspectSource(
  client: RegistryClient,
  text: string,
  options: InspectOptions,
): Promise<InspectReport> {
  const reference = parseReference(text);
  const source = await openSource(reference, client);
  try {
    const raw = await source.getManifest();
    const top = parseManifest(raw.bytes, raw.contentType);
    const platforms =
      top.kind === 'index'
        ? top.manifests.filter((m) => m.platform).map((m) => formatPlatform(normalizePlatform(m.platform!)))
        : undefined;
    const resolved = await resolveImage(source, {
      platform: options.platform ? parsePlatform(options.platform) : hostPlatform(),
      explicitPlatform: options.platform !== undefined,
      pinnedDigest: pinnedDigestOf(reference),
    });
    // Whether a layer could be pulled partially is the strategy module's call, as for a pull.
    const image: ImageFacts = {
      manifestKind: resolved.manifest.kind === 'schema1' ? 'schema1' : resolved.manifest.flavor,
      sourceRanges: source.rangeSupport,
      mode: 'auto',
      decryptionKeys: 0,
    };
    const layers: LayerDescription[] = [];
    for (const layer of resolved.layers) {
      const described = describeLayer(layer, layer.diffID);
      const format = detectLayerFormat(layer);
      const facts = {
        index: layer.index,
        digest: layer.digest,
        size: layer.size,
        format,
        diffID: layer.diffID,
        inStore: false,
      };
      if (options.toc !== false)
        described.chunked = await describeChunked(source, layer, format, wantsToc(image, facts));
      layers.push(described);
    }
    return {
      reference: formatReference(reference),
      location: 'source',
      manifestKind: kindOf(resolved.manifest.mediaType),
      manifestDigest: resolved.manifest.digest,
      indexDigest: resolved.index?.digest,
      platforms,
      platform: formatPlatform(resolved.platform),
      configDigest: resolved.config?.digest,
      created: resolved.config?.parsed.created,
      config: resolved.config?.parsed.config,
      layers,
    };
  } finally {
    await source.close();
  }
}

function describeLayer(
  layer: {
    digest: Digest;
    size: number;
    mediaType: string;
    annotations?: Record<string, string> | undefined;
  },
  diffID: Digest | undefined,
): LayerDescription {
  const format = detectLayerFormat(layer);
  const encryption = format.encrypted ? readEncryptionInfo(layer.annotations) : undefined;
  return {
    digest: layer.digest,
    size: layer.size,
    mediaType: layer.mediaType,
    format: format.report,
    diffID,
    ...(encryption
      ? {
          encryption: {
            cipher: encryption.cipher,
            recipients: encryption.recipients.map((r) => ({
              algorithm: r.algorithm,
              keyType: r.keyType,
              curve: r.curve,
            })),
          },
        }
      : {}),
  };
}

function annotationsOf(
  doc: ReturnType<typeof parseManifest>,
  index: number,
): Record<string, string> | undefined {
  return doc.kind === 'manifest' ? doc.layers[index]?.annotations : undefined;
}

function kindOf(mediaType: string): ManifestKind {
  switch (mediaType) {
    case 'application/vnd.oci.image.index.v1+json':
      return 'oci-index';
    case 'application/vnd.docker.distribution.manifest.list.v2+json':
      return 'docker-manifest-list';
    case 'application/vnd.docker.distribution.manifest.v2+json':
      return 'docker-schema2';
    case 'application/vnd.docker.distribution.manifest.v1+prettyjws':
    case 'application/vnd.docker.distribution.manifest.v1+json':
      return 'docker-schema1';
    default:
      return 'oci-manifest';
  }
}
