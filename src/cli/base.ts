/**
 * What every skiff command shares: the store location, --json, and error reporting by SPEC §9:
 * one line on stderr naming image, layer and cause, a distinct exit code, and with --json the
 * error as JSON on stdout too.
 */
import { Command, Errors, Flags } from '@oclif/core';
import { asSkiffError, ExitCode, SkiffError, UsageError } from '../errors/index.js';
import { defaultStorePath, openExistingStore, Store } from '../store/store.js';

export abstract class SkiffCommand extends Command {
  static override baseFlags = {
    store: Flags.string({
      description:
        'store directory (default: $SKIFF_STORE, else $XDG_DATA_HOME/skiff or ~/.local/share/skiff)',
    }),
    json: Flags.boolean({ description: 'print machine-readable JSON on stdout', default: false }),
  };

  private jsonOutput = false;

  /** The store a writing command (pull) fills, created if absent. */
  protected async openStore(path: string | undefined): Promise<Store> {
    return Store.open(path ?? defaultStorePath());
  }

  /** The store a reading command works on: refused, and never created, where there is none. */
  protected async openExistingStore(path: string | undefined): Promise<Store> {
    return openExistingStore(path ?? defaultStorePath());
  }

  /** Remembers --json early so even parse errors can be reported as JSON. */
  override async init(): Promise<void> {
    await super.init();
    this.jsonOutput = this.argv.includes('--json');
  }

  protected printJson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<never> {
    if (error instanceof Errors.ExitError) throw error;
    const skiffError = toCliError(error);
    process.stderr.write(`skiff: ${skiffError.oneLine()}\n`);
    if (this.jsonOutput) this.printJson(skiffError.toJSON());
    if (process.env.SKIFF_DEBUG && skiffError.cause instanceof Error)
      process.stderr.write(`${skiffError.cause.stack}\n`);
    return this.exit(skiffError.exitCode);
  }
}

/** oclif's own errors (bad flags, missing arguments) are usage errors: exit 1, not oclif's 2. */
function toCliError(error: Error): SkiffError {
  if (error instanceof SkiffError) return error;
  if (error instanceof Errors.CLIError || (error as { oclif?: unknown }).oclif !== undefined) {
    return new UsageError(error.message.split('\n')[0]!.replace(/\s+See more help with --help$/, ''));
  }
  const wrapped = asSkiffError(error);
  if (wrapped.exitCode === ExitCode.ok) return new UsageError(wrapped.message);
  return wrapped;
}
