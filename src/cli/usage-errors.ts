/**
 * oclif's own errors (parser, unknown command) rewritten as skiff's: one line, saying what was
 * wrong and where to look, exit code 1 (usage). oclif words them over several lines (a list of
 * the missing arguments, "See more help with --help"); only the first line used to survive.
 * Recognised by shape, not class, so the same words come out of oclif 4 and 5.
 */
import { stripVTControlCharacters } from 'node:util';
import { Errors } from '@oclif/core';
import { asSkiffError, ExitCode, SkiffError, UsageError } from '../errors/index.js';

interface OclifArg {
  name?: string;
  description?: string;
}

/** Any error reaching the command line, as the SkiffError whose oneLine() is printed. */
export function cliError(error: unknown, command?: string): SkiffError {
  if (error instanceof SkiffError) return error;
  if (isOclifError(error)) return new UsageError(usageMessage(error, command));
  const wrapped = asSkiffError(error);
  return wrapped.exitCode === ExitCode.ok ? new UsageError(wrapped.message) : wrapped;
}

function isOclifError(error: unknown): error is Error & Record<string, unknown> {
  return (
    error instanceof Errors.CLIError ||
    (error instanceof Error && (error as { oclif?: unknown }).oclif !== undefined)
  );
}

function usageMessage(error: Error & Record<string, unknown>, command: string | undefined): string {
  const where = command ? `${command}: ` : '';
  const help = command ? `; see 'skiff ${command} --help'` : `; see 'skiff --help'`;
  const text = stripVTControlCharacters(error.message);
  if (/^Missing \d+ required arg/.test(text) && Array.isArray(error.args)) {
    const args = (error.args as OclifArg[]).map(
      (a) => `${(a.name ?? '?').toUpperCase()}${a.description ? ` (${a.description})` : ''}`,
    );
    return `${where}missing argument${args.length === 1 ? '' : 's'} ${args.join(', ')}${help}`;
  }
  if (/^Nonexistent flag/.test(text) && Array.isArray(error.flags))
    return `${where}unknown flag${error.flags.length === 1 ? '' : 's'} ${error.flags.join(', ')}${help}`;
  if (/^Unexpected argument/.test(text) && Array.isArray(error.args))
    return `${where}unexpected argument${error.args.length === 1 ? '' : 's'} ${(error.args as string[]).map((a) => `"${a}"`).join(', ')}${help}`;
  const parsing = /^Parsing (--[\w-]+)\s*\n\s*([^\n]*)/.exec(text);
  if (parsing) return `${where}${parsing[1]}: ${lowerFirst(parsing[2]!)}${help}`;
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^See more help with --help$/.test(line))
    // FailedFlagValidationError's preamble says nothing the reasons do not.
    .filter((line) => !/^The following errors? occurred:$/.test(line));
  return `${where}${lowerFirst(lines.join('; '))}${help}`;
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? `${text[0]!.toLowerCase()}${text.slice(1)}` : text;
}
