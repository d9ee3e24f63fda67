// Runs the built CLI on a real pseudo-terminal (a tmux pane of a fixed size, on a tmux server of
// its own) and reads the screen as a person would see it: after every redraw, cursor movement and
// line clearing has been applied by a terminal emulator.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');
const EXIT_MARK = '__skiff_exit=';

export interface TerminalRun {
  /** The visible screen, lines the terminal wrapped joined again, trailing blanks removed. */
  screen(): Promise<string>;
  /** Polls the screen until `pattern` shows (or `timeoutMs` passes: then throws with the screen). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Types text as keys (tmux send-keys -l), then Enter if asked. */
  type(text: string, enter?: boolean): Promise<void>;
  /** Waits for the command to end; returns its exit code and the final screen without the marker. */
  finished(timeoutMs?: number): Promise<{ code: number; screen: string }>;
  close(): Promise<void>;
}

let sessions = 0;

const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

export async function runInTerminal(
  args: string[],
  env: Record<string, string> = {},
  size: { columns: number; rows: number } = { columns: 120, rows: 40 },
): Promise<TerminalRun> {
  const socket = `skiff-test-${process.pid}-${sessions++}`;
  const tmux = (...tmuxArgs: string[]) => execFileAsync('tmux', ['-L', socket, ...tmuxArgs]);
  const assignments = Object.entries({ TERM: 'xterm-256color', ...env }).map(([k, v]) => `${k}=${quote(v)}`);
  const command = `env ${assignments.join(' ')} ${quote(process.execPath)} ${quote(BIN)} ${args.map(quote).join(' ')}; echo ${EXIT_MARK}$?; sleep 600`;
  await tmux(
    '-f',
    '/dev/null',
    'new-session',
    '-d',
    '-x',
    String(size.columns),
    '-y',
    String(size.rows),
    command,
  );
  const screen = async () => {
    const { stdout } = await tmux('capture-pane', '-p', '-J');
    return stdout.replace(/[ \t]+$/gm, '').replace(/\s+$/, '');
  };
  const waitFor = async (pattern: RegExp, timeoutMs = 90_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await screen();
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} on the screen:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  return {
    screen,
    waitFor,
    async type(text, enter = false) {
      await tmux('send-keys', '-l', text);
      if (enter) await tmux('send-keys', 'Enter');
    },
    async finished(timeoutMs) {
      const text = await waitFor(new RegExp(`${EXIT_MARK}\\d+`), timeoutMs);
      const code = Number(new RegExp(`${EXIT_MARK}(\\d+)`).exec(text)![1]);
      return { code, screen: text.replace(new RegExp(`\\n?${EXIT_MARK}\\d+[\\s\\S]*$`), '') };
    },
    async close() {
      await tmux('kill-server').catch(() => undefined);
    },
  };
}
