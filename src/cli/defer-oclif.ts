/**
 * Imported by bin/run.js before oclif (src/cli/main.ts). oclif's configuration requires minimatch
 * (config/plugin-loader.js: to match core plugin names against the dependencies) and tinyglobby
 * (config/plugin.js: to find command files when a plugin has no manifest) when it loads, ~15
 * modules. A skiff command runs from the manifest without core plugins (main.ts, loadOptions), so
 * neither is called: they load on first use instead (util/defer-require.ts), which `skiff help`
 * and `skiff autocomplete` still make. @oclif/core 5 (pinned by the lockfile) requires both by
 * these names from its own directory.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { deferRequire } from '../util/defer-require.js';

const require = createRequire(import.meta.url);
const oclifConfig = path.dirname(require.resolve('@oclif/core/config'));
for (const name of ['minimatch', 'tinyglobby']) deferRequire(require, name, [oclifConfig]);
