import { describe, expect, it } from 'vitest';
import { goStyleBooleans } from '../../src/cli/base.js';
import { suggest } from '../../src/cli/not-found.js';

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

describe('suggest (did you mean)', () => {
  const commands = ['pull', 'mirror', 'images', 'inspect', 'unpack', 'save', 'rmi', 'gc'];
  it("suggests another tool's word for a command, or the nearest command within a few edits", () => {
    expect(suggest('pul', commands)).toBe('pull');
    expect(suggest('mirorr', commands)).toBe('mirror');
    expect(suggest('copy', commands)).toBe('mirror');
    expect(suggest('ls', commands)).toBe('images');
    expect(suggest('xyzzy', commands)).toBeUndefined();
  });
});
