/**
 * The entry point bin/run.js hands over to: oclif runs the command, and whatever escapes a
 * command's own error handling (an unknown command, a broken install) still ends as one
 * `skiff: …` line and a documented exit code, not oclif's multi-line ` ›   Error:` block.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config, Errors, flush, handle, type Interfaces, loadHelpClass, run } from '@oclif/core';
import { unknownCommandLine } from './not-found.js';
import { cliError } from './usage-errors.js';

export async function main(root: string, argv = process.argv.slice(2)): Promise<void> {
  try {
    await run(argv, loadOptions(root, argv));
    await flush();
  } catch (error) {
    // A command that already reported its error exits through ExitError; oclif ends the process.
    if (error instanceof Errors.ExitError) return handle(error);
    // Whatever said so (oclif's "command X not found", a not-found plugin's hook), a first word
    // that names no command gets skiff's own line.
    const config = await Config.load(root).catch(() => undefined);
    if (config && argv[0] !== undefined && !config.findCommand(argv[0])) {
      await unknownCommand(config, argv);
      return;
    }
    const skiffError = cliError(error);
    process.stderr.write(`skiff: ${skiffError.oneLine()}\n`);
    process.exit(skiffError.exitCode);
  }
}

/**
 * What oclif loads its configuration from. A command line that names one of skiff's own commands
 * (listed in the manifest scripts/oclif-manifest.mjs writes), or starts with a version flag, is run
 * without oclif's core plugins (@oclif/plugin-help's `help`, @oclif/plugin-autocomplete's
 * `autocomplete`): loading them reads their package.json and manifests and matches plugin names
 * with minimatch on every start, for commands such a run cannot reach (neither plugin has a hook
 * a skiff command runs). `CMD --help` is oclif's own help class, the same with or without them.
 * Anything else (`help`, `autocomplete`, `--help`, another flag first, a word that names no
 * command, an unreadable manifest) loads oclif's whole configuration, as before.
 */
export function loadOptions(root: string, argv: string[]): string | Interfaces.LoadOptions {
  const [first] = argv;
  if (first === undefined || !/^(?:[a-z][a-z-]*|-.*)$/.test(first)) return root;
  const packageRoot = path.resolve(path.dirname(fileURLToPath(root)), '..');
  try {
    const pjson = readJson(path.join(packageRoot, 'package.json')) as Interfaces.PJSON;
    const versionFlags = ['--version', ...(pjson.oclif.additionalVersionFlags ?? [])];
    if (first.startsWith('-') && !versionFlags.includes(first)) return root;
    if (!first.startsWith('-')) {
      const manifest = readJson(path.join(packageRoot, 'oclif.manifest.json')) as Interfaces.Manifest;
      if (!Object.hasOwn(manifest.commands, first)) return root;
    }
    return { root: packageRoot, pjson: { ...pjson, oclif: { ...pjson.oclif, plugins: [] } } };
  } catch {
    return root;
  }
}

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/**
 * `skiff help CMD` without a help plugin shows CMD's help; anything else is a usage error that
 * names the word typed (never glued to its arguments) and the nearest command.
 */
async function unknownCommand(config: Config, argv: string[]): Promise<void> {
  const [typed = '', ...rest] = argv;
  if (typed === 'help') {
    const Help = await loadHelpClass(config);
    await new Help(config).showHelp(rest);
    return;
  }
  process.stderr.write(`${unknownCommandLine(config, typed)}\n`);
  process.exit(1);
}
