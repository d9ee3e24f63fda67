// One registry for the whole run, holding every committed fixture: most tests only read from it.
// Tests that need a registry of their own (counting, faults, pushes) start one with startRegistry().
import type { TestProject } from 'vitest/node';
import { pushFixture, type RunningRegistry, startRegistry } from './registry.js';

declare module 'vitest' {
  export interface ProvidedContext {
    registry: string;
  }
}

/** fixture name → repository:tag in the shared registry */
export const SHARED_IMAGES: Record<string, string> = {
  plain: 'fixtures/plain:latest',
  gzip: 'fixtures/gzip:latest',
  zstd: 'fixtures/zstd:latest',
  v2s2: 'fixtures/v2s2:latest',
  multi: 'fixtures/multi:latest',
};

let registry: RunningRegistry | undefined;

export async function setup(project: TestProject): Promise<void> {
  // The first line of a run says which Node runs the tests (and so the CLI they spawn).
  process.stdout.write(`skiff tests on Node.js ${process.version} (${process.execPath})\n`);
  registry = await startRegistry({ schema1: true });
  await Promise.all(
    Object.entries(SHARED_IMAGES).map(([fixture, repoTag]) => pushFixture(registry!.host, fixture, repoTag)),
  );
  project.provide('registry', registry.host);
}

export async function teardown(): Promise<void> {
  await registry?.stop();
}
