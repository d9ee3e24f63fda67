/** Opens the right source or destination for a reference. */
import { StoreImageDestination } from '../copy/store-image-destination.js';
import type { ImageReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { ImageDestination } from './destination.js';
import { DirDestination } from './dir-dest.js';
import { DirSource } from './dir-source.js';
import { DockerArchiveSource } from './docker-archive.js';
import { DockerArchiveDestination } from './docker-archive-dest.js';
import { OciDestination } from './oci-dest.js';
import { OciLayoutSource } from './oci-layout.js';
import { RegistryDestination } from './registry-dest.js';
import { RegistrySource } from './registry-source.js';
import type { ImageSource } from './source.js';
import { StoreSource } from './store-source.js';

export type { DestinationTraits, ImageDestination, ManifestToWrite } from './destination.js';
export type { BlobRef, ImageSource, RangeConsumer, RawManifest } from './source.js';

export function openSource(reference: ImageReference, client: RegistryClient): ImageSource {
  switch (reference.transport) {
    case 'docker':
      return new RegistrySource(reference, client);
    case 'oci':
      return new OciLayoutSource(reference);
    case 'dir':
      return new DirSource(reference);
    case 'docker-archive':
      return new DockerArchiveSource(reference);
    case 'store':
      return new StoreSource(reference);
  }
}

export interface DestinationOptions {
  /** Registry uploads in PATCH chunks of this many bytes; 0: one streaming PUT per blob. */
  chunkSize?: number | undefined;
  /** The RepoTags entry a docker archive gets when its reference names none. */
  archiveName?: string | undefined;
}

export function openDestination(
  reference: ImageReference,
  client: RegistryClient,
  options: DestinationOptions = {},
): ImageDestination {
  switch (reference.transport) {
    case 'docker':
      return new RegistryDestination(reference, client, { chunkSize: options.chunkSize });
    case 'oci':
      return new OciDestination(reference);
    case 'dir':
      return new DirDestination(reference);
    case 'docker-archive':
      return new DockerArchiveDestination(reference, options.archiveName);
    case 'store':
      // The store commits layers: the copy engine hands copies into it to its store path (copyFrom).
      return new StoreImageDestination(reference);
  }
}
