/**
 * `skiff pull`: a copy from any source transport into the store (src/copy/store-copy.ts does the
 * work: resolve → facts → plan → fetch → verify → commit). This module opens the two ends.
 */
import { copyToStore, type StoreCopyOptions } from '../copy/store-copy.js';
import { StoreDestination } from '../copy/store-destination.js';
import { parseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import type { Store } from '../store/index.js';
import { openSource } from '../transport/index.js';
import type { PullReport } from './report.js';

export type { PullReport } from './report.js';

export interface PullOptions extends StoreCopyOptions {
  store: Store;
  client: RegistryClient;
}

export async function pull(options: PullOptions): Promise<PullReport> {
  const reference = parseReference(options.reference);
  const source = await openSource(reference, options.client);
  try {
    return await copyToStore(source, new StoreDestination(options.store, reference), options);
  } finally {
    await source.close();
  }
}
