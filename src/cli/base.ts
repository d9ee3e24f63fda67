/**
 * What every skiff command shares: the store location, --json, and error reporting by docs/design.md §9:
 * one line on stderr naming image, layer and cause, a distinct exit code, and with --json the
 * error as JSON on stdout too.
 */

import { resolve } from 'node:path';
import { Command, Errors, Flags } from '@oclif/core';
import type { Store } from '../store/index.js';
import { cliError } from './usage-errors.js';

/**
 * The store's code (~35 modules) loads when a command opens a store, not with every command:
 * login, logout, list-tags and mirror-report never do.
 */
const storeModule = () => import('../store/index.js');

export const storeFlag = Flags.string({
  description: 'store directory (default: $SKIFF_STORE, else $XDG_DATA_HOME/skiff or ~/.local/share/skiff)',
});
export const verboseFlag = Flags.boolean({
  description: "print the stack trace of an unexpected error, and the registries' rate limits",
  default: false,
});
export const jsonFlag = Flags.boolean({
  description: 'print machine-readable JSON on stdout',
  default: false,
});

export abstract class SkiffCommand extends Command {
  /** A command that never opens the store (mirror) overrides this with `{ json: jsonFlag }`. */
  static override baseFlags: {
    store?: typeof storeFlag;
    json: typeof jsonFlag;
    verbose?: typeof verboseFlag;
  } = {
    store: storeFlag,
    json: jsonFlag,
    verbose: verboseFlag,
  };

  private jsonOutput = false;
  /** The store this command opened: a write refused under it is exit 7, whichever step failed. */
  private storeRoot: string | undefined;

  /** The store a writing command (pull) fills, created if absent. */
  protected async openStore(path: string | undefined): Promise<Store> {
    const { defaultStorePath, Store } = await storeModule();
    this.storeRoot = resolve(path ?? defaultStorePath());
    return Store.open(this.storeRoot);
  }

  /** The store a reading command works on: refused, and never created, where there is none. */
  protected async openExistingStore(path: string | undefined): Promise<Store> {
    const { defaultStorePath, openExistingStore } = await storeModule();
    this.storeRoot = resolve(path ?? defaultStorePath());
    return openExistingStore(this.storeRoot);
  }

  /** Remembers --json early so even parse errors can be reported as JSON. */
  override async init(): Promise<void> {
    await super.init();
    this.argv = goStyleBooleans(this.argv, { ...this.ctor.baseFlags, ...this.ctor.flags });
    this.jsonOutput = this.argv.includes('--json');
  }

  protected printJson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<never> {
    if (error instanceof Errors.ExitError) throw error;
    // A command that set storeRoot has loaded the store's module: importing it again costs nothing.
    const refused =
      this.storeRoot === undefined
        ? undefined
        : (await storeModule()).storeWriteFailure(error, this.storeRoot);
    const skiffError = refused ?? cliError(error, this.id);
    process.stderr.write(`skiff: ${skiffError.oneLine()}\n`);
    if (this.jsonOutput) this.printJson(skiffError.toJSON());
    const verbose = Boolean(process.env.SKIFF_DEBUG) || this.argv.includes('--verbose');
    if (verbose && skiffError.cause instanceof Error) process.stderr.write(`${skiffError.cause.stack}\n`);
    return this.exit(skiffError.exitCode);
  }
}

/**
 * skopeo (Go's pflag) writes a boolean's value after `=`: `--tls-verify=false`. oclif reads
 * `--X=false` as `--X` and a stray argument "false", so such words become `--X` / `--no-X` for the
 * boolean flags that have a `--no-` form.
 */
export function goStyleBooleans(
  argv: string[],
  flags: Record<string, { type: string; allowNo?: boolean }>,
): string[] {
  const end = argv.indexOf('--');
  return argv.map((word, i) => {
    const match = /^--([\w-]+)=(true|false)$/.exec(word);
    const flag = match && flags[match[1]!];
    if (!match || !flag || flag.type !== 'boolean' || !flag.allowNo || (end >= 0 && i > end)) return word;
    return match[2] === 'true' ? `--${match[1]}` : `--no-${match[1]}`;
  });
}
