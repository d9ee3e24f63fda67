// Starts Debian's docker-registry (the CNCF distribution server) on a free loopback port for tests.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/images');

export {
  freePort,
  type RegistryOptions,
  type RunningRegistry,
  startRegistry,
} from '../../scripts/lib/registry.mjs';

/** Copies an image with Debian's skopeo (the real tool), e.g. from a fixture layout into a registry. */
export async function skopeoCopy(
  src: string,
  dst: string,
  flags: string[] = [],
  skopeo = 'skopeo',
): Promise<void> {
  await execFileAsync(
    skopeo,
    ['copy', '-q', '--dest-tls-verify=false', '--src-tls-verify=false', ...flags, src, dst],
    {
      maxBuffer: 16 * 1024 * 1024,
    },
  );
}

/** The fixture transports: OCI layouts by default, dir: for Docker-format fixtures. */
export function fixtureRef(name: string): string {
  const dir = path.join(FIXTURES, name);
  return fs.existsSync(path.join(dir, 'oci-layout')) ? `oci:${dir}:latest` : `dir:${dir}`;
}

/** Pushes a committed fixture to `registry` as repo:tag, preserving its digests. */
export async function pushFixture(registry: string, fixture: string, repoTag: string): Promise<void> {
  const all = fixture === 'multi' ? ['--all'] : [];
  await skopeoCopy(fixtureRef(fixture), `docker://${registry}/${repoTag}`, ['--preserve-digests', ...all]);
}
