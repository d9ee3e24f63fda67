/** Opens the right source for a reference. */
import { UsageError } from '../errors/index.js';
import type { ImageReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import { DirSource } from './dir-source.js';
import { OciLayoutSource } from './oci-layout.js';
import { RegistrySource } from './registry-source.js';
import type { ImageSource } from './source.js';

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
      throw new UsageError('docker-archive: sources are not supported yet');
  }
}
