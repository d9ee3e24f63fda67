/**
 * oclif's `command_not_found` hook: one `skiff:` line naming the word that is not a command and
 * the command meant (exit 1, a usage error). It never prompts: @oclif/plugin-not-found asks "Did
 * you mean …?" on a terminal and then runs the guess (skiff's commands write to stores and
 * registries), and off a terminal it exits 127 without a suggestion.
 */
import type { Hook, Interfaces } from '@oclif/core';
import { ExitCode } from '../errors/index.js';

/** What skopeo and podman call the things skiff does. */
const OTHER_TOOLS_WORDS: Record<string, string> = {
  copy: 'mirror',
  sync: 'mirror',
  ls: 'images',
  list: 'images',
  rm: 'rmi',
  prune: 'gc',
  export: 'save',
};

const hook: Hook.CommandNotFound = async function ({ id, config }) {
  // With spaces as the topic separator oclif joins the words it could not match into the id
  // (`copy SRC DST` arrives as `copy:SRC:DST`): the command the user typed is the first word.
  const typed = id.split(':')[0] ?? id;
  process.stderr.write(`${unknownCommandLine(config, typed)}\n`);
  this.exit(ExitCode.usage);
};

export default hook;

/** The one line for a first word that names no command (src/cli/main.ts says it too, for flags). */
export function unknownCommandLine(config: Interfaces.Config, typed: string): string {
  const { bin } = config;
  if (typed.startsWith('-'))
    return `${bin}: unknown flag ${typed} before the command; '${bin} help' lists them`;
  const commands = config.commands.filter((c) => !c.hidden).flatMap((c) => [c.id, ...c.aliases]);
  const suggestion = suggest(typed, commands);
  const hint = suggestion ? `did you mean '${bin} ${suggestion}'?` : `'${bin} help' lists them`;
  return `${bin}: '${typed}' is not a ${bin} command; ${hint}`;
}

/** The command `typed` most likely meant: another tool's word for it, or the nearest by edits. */
export function suggest(typed: string, commands: string[]): string | undefined {
  const word = typed.toLowerCase();
  const known = OTHER_TOOLS_WORDS[word];
  if (known && commands.includes(known)) return known;
  let best: { id: string; distance: number } | undefined;
  for (const id of commands) {
    const distance = editDistance(word, id);
    if (!best || distance < best.distance) best = { id, distance };
  }
  // Beyond half the word's length the nearest command is a guess, not a typo.
  return best && best.distance <= Math.max(2, Math.floor(word.length / 2)) ? best.id : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
