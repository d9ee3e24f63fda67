/**
 * `skiff save` and `skiff push`: copies out of the store. The store is an image source (`store:`,
 * src/transport/store-source.ts) and the copy is the one copy engine's, so a stored image goes to
 * every destination transport the engine writes: oci:, dir: and docker-archive: (save), a registry
 * (push). Layers leave the store as the uncompressed tars they were, rebuilt from tar-split and
 * objects and proven against their DiffIDs as they stream; configs byte for byte.
 */
import type { Digest } from '../digest/index.js';
import { UsageError } from '../errors/index.js';
import { type FoundImage, findImage, findImagesByName } from '../images/index.js';
import { formatPlatform } from '../manifest/index.js';
// The one copy engine (the lead repoints this import when it moves to src/copy/).
import { type CopyOptions, copyImage, type MirrorResult } from '../mirror/index.js';
import { formatReference, type ImageReference, parseReference } from '../reference/index.js';
import type { Store } from '../store/index.js';
import { openDestination } from '../transport/index.js';

export type StoreCopyOptions = Omit<CopyOptions, 'id' | 'destinationClient' | 'preserveSchema1'>;

/**
 * The stored images `text` names, as findImage finds them (--platform choosing), or with `all` every
 * platform the name was pulled for.
 */
export async function storeImages(
  store: Store,
  text: string,
  options: { all?: boolean | undefined; platform?: string | undefined },
): Promise<FoundImage[]> {
  if (!options.all) return [await findImage(store, text, options.platform)];
  if (options.platform !== undefined) throw new UsageError('--all and --platform exclude each other');
  const images = await findImagesByName(store, text);
  return images.length > 0 ? images : [await findImage(store, text)];
}

/** Which destinations each command writes: save local layouts, push registries. */
const WRITES = {
  save: ['oci', 'dir', 'docker-archive'],
  push: ['docker'],
} as const satisfies Record<string, readonly ImageReference['transport'][]>;

/**
 * Copies `images` (from storeImages of `text`) to `destination`; throws the copy's error, if any,
 * so the command exits with its code.
 */
export async function copyFromStore(
  command: keyof typeof WRITES,
  store: Store,
  text: string,
  images: readonly FoundImage[],
  destination: string,
  options: StoreCopyOptions,
): Promise<MirrorResult> {
  const dst = parseReference(destination);
  checkDestination(command, dst, destination);
  // The copy takes the very image findImage chose: a name stored for several platforms is served
  // as an index, and the chosen image's platform picks the same entry.
  const platform = options.all ? undefined : formatPlatform(images[0]!.record.platform);
  const source = formatReference({ transport: 'store', root: store.root, image: text });
  const result = await copyImage(source, named(destination, dst, images[0]!), {
    ...options,
    platform,
  });
  if (result.error) throw result.error;
  return result;
}

function checkDestination(command: keyof typeof WRITES, dst: ImageReference, text: string): void {
  if ((WRITES[command] as readonly string[]).includes(dst.transport)) return;
  const other = command === 'save' ? 'push' : 'save';
  throw new UsageError(
    `${command} writes ${command === 'save' ? 'oci:, dir: or docker-archive:' : 'docker:// (a registry)'}; "${text}" is for skiff ${other}`,
  );
}

/**
 * A destination without a name gets the stored image's: an OCI layout its tag (else `latest`, as
 * save has always tagged it), a docker archive its `registry/repository:tag`, as `docker save`
 * names it.
 */
function named(text: string, dst: ImageReference, image: FoundImage): string {
  const name = image.name && registryTag(image.name.name);
  if (dst.transport === 'oci' && dst.tag === undefined)
    return `${text}:${name ? name.slice(name.lastIndexOf(':') + 1) : 'latest'}`;
  if (dst.transport === 'docker-archive' && dst.image === undefined && name) return `${text}:${name}`;
  return text;
}

/** `registry/repository:tag` when a stored name is one (not a digest, not a local layout's name). */
function registryTag(name: string): string | undefined {
  try {
    const ref = parseReference(name);
    return ref.transport === 'docker' && ref.tag && !ref.digest
      ? `${ref.registry}/${ref.repository}:${ref.tag}`
      : undefined;
  } catch {
    return undefined;
  }
}

/** What `save --json` has always said, beside the copy's own counters. */
export interface SaveSummary {
  configDigest: Digest;
  layersWritten: number;
  layersPresent: number;
  /** Bytes of layer tars written (the config not counted). */
  bytesWritten: number;
}

/**
 * save's layer counts: the copy counts blobs, the config among them, so the configs present before
 * the copy say which of its blobs were layers.
 */
export async function saveSummary(
  store: Store,
  images: readonly FoundImage[],
  result: MirrorResult,
  configsPresent: ReadonlySet<Digest>,
): Promise<SaveSummary> {
  let configsWritten = 0;
  let configBytes = 0;
  for (const image of images) {
    if (configsPresent.has(image.configDigest)) continue;
    configsWritten++;
    configBytes += (await store.readImageConfig(image.configDigest)).length;
  }
  const layers = new Set(images.flatMap((image) => image.record.diffIDs));
  const layersWritten = result.blobsCopied - configsWritten;
  return {
    configDigest: images[0]!.configDigest,
    layersWritten,
    layersPresent: layers.size - layersWritten,
    bytesWritten: result.bytes - configBytes,
  };
}

/** The stored images' configs the destination holds already (asked before the copy). */
export async function configsAt(
  destination: string,
  images: readonly FoundImage[],
  options: Pick<CopyOptions, 'client'>,
): Promise<Set<Digest>> {
  const ref = parseReference(destination);
  // An archive is written whole each time: it holds nothing before the copy.
  if (ref.transport === 'docker-archive') return new Set();
  const dst = await openDestination(ref, options.client);
  try {
    const present = new Set<Digest>();
    for (const image of images) if (await dst.hasBlob(image.configDigest)) present.add(image.configDigest);
    return present;
  } finally {
    await dst.close();
  }
}
