/**
 * The manifests `mirror` writes when it cannot copy the source's bytes: rewritten image manifests
 * and indexes (OCI, the source's other fields kept, annotated with their origin), and the manifest
 * a docker archive is read back as. Pure: no I/O.
 */
import { type Digest, isDigest, sha256 } from '../digest/index.js';
import { type Descriptor, type IndexDocument, MediaType, type Schema1Document } from '../manifest/index.js';
import { archiveManifest } from '../transport/archive-manifest.js';
import { ociMediaType } from './layers.js';

/** Set on manifests the mirror rewrote: the digest of the source document they came from... */
export const SOURCE_ANNOTATION = 'io.github.skiff.mirror.source-digest';
/** ...and what was done to it (`schema1`, `zstd`, `schema1+gzip`). */
export const CONVERSION_ANNOTATION = 'io.github.skiff.mirror.conversion';

/** A manifest as written to the destination. */
export interface Written {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** A layer as the destination gets it, when it differs from the source's. */
export interface LayerOut {
  descriptor: Descriptor;
  /** Known when the layer was decompressed on the way (conversions, schema1). */
  diffID?: Digest | undefined;
}

export function originAnnotations(sourceDigest: Digest, conversion: string): Record<string, string> {
  return { [SOURCE_ANNOTATION]: sourceDigest, [CONVERSION_ANNOTATION]: conversion };
}

/**
 * A rewritten image manifest. `outs[i]` replaces layer i; an unchanged layer keeps its original
 * entry with the OCI equivalent of its media type. `original` is absent for schema1 sources.
 */
export function ociManifest(
  original: Buffer | undefined,
  config: Descriptor,
  outs: Array<LayerOut | undefined>,
  origin: Record<string, string>,
): Written {
  const base = original ? (JSON.parse(original.toString()) as Record<string, unknown>) : { schemaVersion: 2 };
  const originalLayers = (base.layers ?? []) as Array<Record<string, unknown>>;
  const layers = outs.map((out, i) =>
    out
      ? out.descriptor
      : { ...originalLayers[i], mediaType: ociMediaType(String(originalLayers[i]?.mediaType)) },
  );
  const configEntry = original ? (base.config as Record<string, unknown>) : config;
  const manifest = {
    ...base,
    mediaType: MediaType.ociManifest,
    config: { ...configEntry, mediaType: ociMediaType(config.mediaType) },
    layers,
    annotations: { ...annotationsOf(original), ...origin },
  };
  return fresh(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
}

/** An index whose children were rewritten: each entry points at its new child. */
export function rewriteIndex(
  doc: IndexDocument,
  children: Written[],
  origin: Record<string, string>,
): Written {
  const base = JSON.parse(doc.bytes.toString()) as Record<string, unknown> & {
    manifests: Array<Record<string, unknown>>;
  };
  const manifests = base.manifests.map((entry, i) => {
    const child = children[i]!;
    return { ...entry, mediaType: child.mediaType, digest: child.digest, size: child.bytes.length };
  });
  const index = {
    ...base,
    mediaType: MediaType.ociIndex,
    manifests,
    annotations: { ...annotationsOf(doc.bytes), ...origin },
  };
  return fresh(Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
}

/** What a docker archive will be read back as: the manifest it is compared by next time. */
export function archiveWritten(config: Descriptor, layers: Descriptor[]): Written {
  const bytes = archiveManifest(
    config,
    layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: MediaType.dockerLayer })),
  );
  return fresh(bytes, MediaType.dockerManifest);
}

export function same(doc: { bytes: Buffer; mediaType: string; digest: Digest }): Written {
  return { bytes: doc.bytes, mediaType: doc.mediaType, digest: doc.digest };
}

export function fresh(bytes: Buffer, mediaType: string): Written {
  return { bytes, mediaType, digest: sha256(bytes) };
}

export function annotationsOf(bytes: Buffer | undefined): Record<string, string> {
  if (!bytes) return {};
  try {
    const annotations = (JSON.parse(bytes.toString()) as { annotations?: unknown }).annotations;
    return annotations && typeof annotations === 'object' ? (annotations as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** Every blob a schema1 manifest references, throwaway layers included (the registry checks them all). */
export function schema1BlobSums(doc: Schema1Document): Digest[] {
  const raw = JSON.parse(doc.schema1.payload.toString()) as { fsLayers?: Array<{ blobSum?: unknown }> };
  const sums = (raw.fsLayers ?? []).map((l) => String(l.blobSum)).filter(isDigest);
  return [...new Set(sums)];
}
