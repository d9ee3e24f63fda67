// The rootfs each fixture image should unpack to, materialised from the same specs that built it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// @ts-expect-error: fixture tooling is plain JavaScript, shared with regenerate.sh
import { materialize, mergeLayers, TREES } from '../../fixtures/lib/trees.mjs';

/** The merged rootfs of the two-layer fixture image (base + update, whiteouts applied). */
export function expectedFixtureRootfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-expected-'));
  fs.rmdirSync(dir);
  materialize(mergeLayers([TREES.base, TREES.update]), dir);
  return dir;
}
