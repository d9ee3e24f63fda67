/**
 * The source side of a mirror: which manifests are copied. The whole index with --all, otherwise
 * one image (an index's platform is chosen deterministically, as `pull` chooses it). Every
 * manifest read is checked against the digest that names it.
 */
import pLimit from 'p-limit';
import { VerificationError } from '../errors/index.js';
import {
  type ImageManifestDocument,
  type IndexDocument,
  isAttestation,
  type Platform,
  parseManifest,
  type Schema1Document,
  selectPlatform,
} from '../manifest/index.js';
import type { ImageReference } from '../reference/index.js';
import type { ImageSource } from '../transport/index.js';
import { fetchManifestByDigest } from '../transport/manifests.js';

export interface ImageNode {
  kind: 'image';
  doc: ImageManifestDocument | Schema1Document;
}

export interface IndexNode {
  kind: 'index';
  doc: IndexDocument;
  /** In the index's order. */
  children: PlanNode[];
}

export type PlanNode = ImageNode | IndexNode;

const MAX_INDEX_DEPTH = 3;

export async function readSourceTree(
  source: ImageSource,
  reference: ImageReference,
  options: { all: boolean; platform: Platform; signal?: AbortSignal | undefined },
): Promise<PlanNode> {
  const raw = await source.getManifest(options.signal);
  const doc = parseManifest(raw.bytes, raw.contentType);
  const pinned = reference.transport === 'docker' ? reference.digest : undefined;
  if (pinned && doc.digest !== pinned) {
    throw new VerificationError(
      `manifest digest mismatch: the reference pins ${pinned}, the source served ${doc.digest}`,
      {
        digest: pinned,
      },
    );
  }
  if (doc.kind !== 'index') return { kind: 'image', doc };
  if (options.all) return readIndex(source, doc, 1, options.signal);
  const chosen = selectPlatform(
    doc.manifests.filter((m) => !isAttestation(m)),
    options.platform,
    `index ${doc.digest}`,
  );
  const child = await fetchManifestByDigest(source, chosen, options.signal);
  if (child.kind === 'index')
    throw new VerificationError(
      `index ${doc.digest} points at another index ${child.digest}; use --all to copy it`,
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
      limit(async (): Promise<PlanNode> => {
        const child = await fetchManifestByDigest(source, descriptor, signal);
        return child.kind === 'index'
          ? readIndex(source, child, depth + 1, signal)
          : { kind: 'image', doc: child };
      }),
    ),
  );
  return { kind: 'index', doc, children };
}
