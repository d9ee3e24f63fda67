import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatLimit, shortDigest } from '../../src/util/present.js';

describe('presentation helpers', () => {
  it('show sizes in decimal units, bytes whole and the rest to one decimal', () => {
    expect([0, 999, 1000, 45_600, 999_949, 1_200_000_000, 8 * 1024 ** 4, 3e15].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '1.0 kB',
      '45.6 kB',
      '999.9 kB',
      '1.2 GB',
      '8.8 TB',
      '3000.0 TB',
    ]);
  });

  it('cut a digest to its algorithm and 12 hex digits, and leave anything else alone', () => {
    expect(shortDigest(`sha256:${'0123456789abcdef'.repeat(4)}`)).toBe('sha256:0123456789ab');
    expect(shortDigest('not-a-digest')).toBe('not-a-digest');
  });

  it('show measured durations to a tenth of a second, and limits as the user wrote them', () => {
    expect([0, 1234, 60_000].map(formatDuration)).toEqual(['0.0 s', '1.2 s', '60.0 s']);
    expect([30_000, 2500, 250].map(formatLimit)).toEqual(['30 s', '2.5 s', '0.3 s']);
  });
});
