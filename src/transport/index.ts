/**
 * Opens the right source or destination for a reference. Each transport's module loads when a
 * reference first needs it: a registry → registry mirror loads neither the local transports nor
 * the store (whose copy path, `StoreImageDestination`, brings the partial-pull engine with it), and
 * `save` to a layout loads no registry transport (docs/performance.md "Start-up";
 * test/integration/startup.test.ts checks what a registry mirror loads).
 */
import type { ImageReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { ImageDestination } from './destination.js';
import type { ImageSource } from './source.js';

export type { DestinationTraits, ImageDestination, ManifestToWrite } from './destination.js';
export type { BlobRef, ImageSource, RangeConsumer, RawManifest } from './source.js';

export async function openSource(reference: ImageReference, client: RegistryClient): Promise<ImageSource> {
  switch (reference.transport) {
    case 'docker':
      return new (await import('./registry-source.js')).RegistrySource(reference, client);
    case 'oci':
      return new (await import('./oci-layout.js')).OciLayoutSource(reference);
    case 'dir':
      return new (await import('./dir-source.js')).DirSource(reference);
    case 'docker-archive':
      return new (await import('./docker-archive.js')).DockerArchiveSource(reference);
    case 'store':
      return new (await import('./store-source.js')).StoreSource(reference);
  }
}

export interface DestinationOptions {
  /** Registry uploads in PATCH chunks of this many bytes; 0: one streaming PUT per blob. */
  chunkSize?: number | undefined;
  /** The RepoTags entry a docker archive gets when its reference names none. */
  archiveName?: string | undefined;
}

export async function openDestination(
  reference: ImageReference,
  client: RegistryClient,
  options: DestinationOptions = {},
): Promise<ImageDestination> {
  switch (reference.transport) {
    case 'docker':
      return new (await import('./registry-dest.js')).RegistryDestination(reference, client, {
        chunkSize: options.chunkSize,
      });
    case 'oci':
      return new (await import('./oci-dest.js')).OciDestination(reference);
    case 'dir':
      return new (await import('./dir-dest.js')).DirDestination(reference);
    case 'docker-archive':
      return new (await import('./docker-archive-dest.js')).DockerArchiveDestination(
        reference,
        options.archiveName,
      );
    case 'store':
      // The store commits layers: the copy engine hands copies into it to its store path (copyFrom).
      return new (await import('../copy/store-image-destination.js')).StoreImageDestination(reference);
  }
}
