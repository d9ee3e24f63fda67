import { describe, expect, it } from 'vitest';
import { goStyleBooleans } from '../../src/cli/base.js';
import { closestCommand } from '../../src/cli/usage-errors.js';

describe('goStyleBooleans', () => {
  const flags = {
    'tls-verify': { type: 'boolean', allowNo: true },
    json: { type: 'boolean' },
    creds: { type: 'option' },
  };
  it('turns --X=false/true into --no-X/--X for booleans with a --no- form, and nothing else', () => {
    expect(
      goStyleBooleans(
        [
          '--tls-verify=false',
          '--tls-verify=true',
          '--json=false',
          '--creds=a:false',
          'REF',
          '--',
          '--tls-verify=false',
        ],
        flags,
      ),
    ).toEqual([
      '--no-tls-verify',
      '--tls-verify',
      '--json=false',
      '--creds=a:false',
      'REF',
      '--',
      '--tls-verify=false',
    ]);
  });
});

describe('closestCommand', () => {
  const commands = ['pull', 'mirror', 'images', 'inspect', 'unpack', 'save', 'rmi', 'gc'];
  it('suggests the nearest command within two edits, or a command the word begins', () => {
    expect(closestCommand('pul', commands)).toBe('pull');
    expect(closestCommand('mirorr', commands)).toBe('mirror');
    expect(closestCommand('insp', commands)).toBe('inspect');
    expect(closestCommand('copy', commands)).toBeUndefined();
  });
});
