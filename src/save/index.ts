/**
 * `skiff save`: writes a stored image out as an OCI layout, its layers rebuilt byte for byte from
 * the store (tar-split + objects) and proven against their DiffIDs as they are written.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../digest/index.js';
import { UsageError } from '../errors/index.js';
import type { FoundImage } from '../images/index.js';
import { MediaType } from '../manifest/index.js';
import { parseReference } from '../reference/index.js';
import { rebuildLayerTar, type Store } from '../store/index.js';
import { OciLayoutDestination } from '../transport/oci-layout-dest.js';

export interface SaveResult {
  destination: string;
  manifestDigest: Digest;
  layersWritten: number;
  layersPresent: number;
  bytesWritten: number;
}

export async function saveImage(store: Store, image: FoundImage, destination: string): Promise<SaveResult> {
  const ref = parseReference(destination);
  if (ref.transport !== 'oci')
    throw new UsageError(`save writes oci:DIR[:TAG]; "${destination}" is not supported`);
  const dest = new OciLayoutDestination(ref.dir, ref.tag ?? defaultTag(image));
  await dest.init();
  const result: SaveResult = {
    destination,
    manifestDigest: '' as Digest,
    layersWritten: 0,
    layersPresent: 0,
    bytesWritten: 0,
  };
  const layers = [];
  for (const diffID of image.record.diffIDs) {
    const layer = await store.readLayer(diffID);
    layers.push({ mediaType: MediaType.ociLayer, digest: diffID, size: layer.tarSize });
    if (await dest.hasBlob(diffID, layer.tarSize)) {
      result.layersPresent++;
      continue;
    }
    // putBlob hashes what it writes and refuses anything but the DiffID: the rebuild is proven.
    await dest.putBlob(
      diffID,
      Readable.from(rebuildLayerTar(store, diffID), { objectMode: false }),
      layer.tarSize,
    );
    result.layersWritten++;
    result.bytesWritten += layer.tarSize;
  }
  const config = await store.readImageConfig(image.configDigest);
  if (!(await dest.hasBlob(image.configDigest, config.length)))
    await dest.putBlob(image.configDigest, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: image.configDigest, size: config.length },
      layers,
    }),
  );
  const descriptor = await dest.putManifest(manifest, MediaType.ociManifest);
  result.manifestDigest = descriptor.digest;
  return result;
}

function defaultTag(image: FoundImage): string {
  const name = image.name?.name ?? '';
  const tag = /:([\w][\w.-]{0,127})$/.exec(name.replace(/@sha256:[a-f0-9]+$/, ''))?.[1];
  return tag ?? 'latest';
}
