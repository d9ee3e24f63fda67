// Writes oclif.manifest.json after a build, so the CLI finds its commands without importing every
// one of them (and the whole library behind them) on each start: the manifest halves start-up.
import fs from 'node:fs';
import path from 'node:path';
import { Plugin } from '@oclif/core';

const root = path.resolve(import.meta.dirname, '..');
const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true });
await plugin.load();
fs.writeFileSync(path.join(root, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest)}\n`);
