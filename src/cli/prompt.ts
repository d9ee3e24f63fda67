/** Reading a secret from the terminal, as `sudo` and `skopeo login` do: prompt on stderr, no echo. */
import { UsageError } from '../errors/index.js';

const ENTER = new Set(['\r', '\n']);
const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = new Set(['\u007f', '\b']);

export function readSecret(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  input.setRawMode(true);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let secret = '';
    const finish = (error?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(secret);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (ENTER.has(char)) return finish();
        if (char === CTRL_C || char === CTRL_D) return finish(new UsageError('no password given'));
        if (BACKSPACE.has(char)) secret = secret.slice(0, -1);
        else secret += char;
      }
    };
    input.on('data', onData);
  });
}

/** Reads one line from the terminal, echoed (a user name), prompting on stderr. */
export async function readLine(prompt: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const lines = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await lines.question(prompt)).trim();
  } finally {
    lines.close();
  }
}

/** Whether a prompt can be shown and answered (stdin and stderr are a terminal). */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}
