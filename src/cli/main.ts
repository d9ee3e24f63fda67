/**
 * The entry point bin/run.js hands over to: oclif runs the command, and whatever escapes a
 * command's own error handling (an unknown command, a broken install) still ends as one
 * `skiff: …` line and a documented exit code, not oclif's multi-line ` ›   Error:` block.
 */
import { Config, Errors, flush, handle, loadHelpClass, run } from '@oclif/core';
import { unknownCommandLine } from './not-found.js';
import { cliError } from './usage-errors.js';

export async function main(root: string, argv = process.argv.slice(2)): Promise<void> {
  try {
    await run(argv, root);
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
