// Runs the built CLI (bin/run.js) as a user would, capturing output and the exit code.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../../bin/run.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** A fresh empty directory under the OS temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'skiff-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** `skiff: HOST answered 503; retrying in 0.5 s (attempt 2 of 5)`: said while waiting, not an error. */
export const RETRY_NOTICE = /; retrying in [\d.]+ s \(attempt \d+ of \d+\)$/;

/**
 * Checks that a run did not crash: stderr has no internal-error line (bin/run.js's last-resort
 * handler), no stack trace and at most one `skiff:` line, complete, besides the notices of waits
 * before a retry (registry/retry.ts). Returns that line.
 */
export function expectCleanStderr(result: CliResult, options: { allowNone?: boolean } = {}): string {
  const where = `stderr was:\n${result.stderr}`;
  expect(result.stderr, where).not.toContain('internal error');
  expect(result.stderr, where).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(result.signal, where).toBeNull();
  const lines = result.stderr.split('\n').filter((l) => l.startsWith('skiff:') && !RETRY_NOTICE.test(l));
  if (options.allowNone && lines.length === 0) return '';
  expect(lines, where).toHaveLength(1);
  expect(result.stderr.endsWith('\n'), where).toBe(true);
  return lines[0]!;
}
