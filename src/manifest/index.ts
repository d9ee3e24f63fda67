/**
 * Manifests (docs/design.md §3): one entry point that recognises and validates every kind of document a
 * registry or layout can hand us, and the platform selection that turns an index into one image.
 */
import { type Digest, sha256 } from '../digest/index.js';
import { VerificationError } from '../errors/index.js';
import { isIndexMediaType, MediaType } from './media-types.js';
import { type ParsedSchema1, parseSchema1, SCHEMA1_MEDIA_TYPES } from './schema1.js';
import { type Descriptor, ImageManifestSchema, IndexSchema, parseDocument } from './schemas.js';

export * from './media-types.js';
export * from './platform.js';
export * from './schemas.js';

/** docs/design.md §10: a manifest larger than this is refused before it is parsed. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Image configs are small too; bound them the same way. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

interface DocumentBase {
  mediaType: string;
  /** The digest that names this document (for schema1: of the payload without signatures). */
  digest: Digest;
  bytes: Buffer;
}

export interface IndexDocument extends DocumentBase {
  kind: 'index';
  manifests: Descriptor[];
}

export interface ImageManifestDocument extends DocumentBase {
  kind: 'manifest';
  /** 'docker' for schema2, 'oci' for OCI manifests. */
  flavor: 'oci' | 'docker';
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string> | undefined;
}

export interface Schema1Document extends DocumentBase {
  kind: 'schema1';
  schema1: ParsedSchema1;
}

export type ManifestDocument = IndexDocument | ImageManifestDocument | Schema1Document;

/**
 * Validates a manifest document. The media type is the document's own `mediaType` field when it
 * has one, else the Content-Type it was served with, else recognised from its shape.
 */
export function parseManifest(
  bytes: Buffer,
  contentType: string | undefined,
  what = 'manifest',
): ManifestDocument {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new VerificationError(
      `${what} is ${bytes.length} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`,
    );
  }
  const mediaType = detectMediaType(bytes, contentType, what);
  if (SCHEMA1_MEDIA_TYPES.includes(mediaType)) {
    const schema1 = parseSchema1(bytes);
    return { kind: 'schema1', mediaType, digest: schema1.digest, bytes, schema1 };
  }
  const digest = sha256(bytes);
  if (isIndexMediaType(mediaType)) {
    const index = parseDocument(IndexSchema, bytes, what);
    return { kind: 'index', mediaType, digest, bytes, manifests: index.manifests };
  }
  if (mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest) {
    const manifest = parseDocument(ImageManifestSchema, bytes, what);
    return {
      kind: 'manifest',
      flavor: mediaType === MediaType.dockerManifest ? 'docker' : 'oci',
      mediaType,
      digest,
      bytes,
      config: manifest.config,
      layers: manifest.layers,
      annotations: manifest.annotations,
    };
  }
  throw new VerificationError(`${what} has unsupported media type "${mediaType}"`);
}

function detectMediaType(bytes: Buffer, contentType: string | undefined, what: string): string {
  let json: {
    mediaType?: unknown;
    schemaVersion?: unknown;
    manifests?: unknown;
    fsLayers?: unknown;
    signatures?: unknown;
  };
  try {
    json = JSON.parse(bytes.toString());
  } catch (error) {
    throw new VerificationError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null) throw new VerificationError(`${what} is not a JSON object`);
  if (typeof json.mediaType === 'string' && json.mediaType !== '') return json.mediaType;
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  if (
    declared &&
    declared !== 'application/json' &&
    declared !== 'text/plain' &&
    declared !== 'application/octet-stream'
  ) {
    return declared;
  }
  if (json.schemaVersion === 1) return json.signatures ? MediaType.schema1Signed : MediaType.schema1;
  if (Array.isArray(json.manifests)) return MediaType.ociIndex;
  return MediaType.ociManifest;
}
