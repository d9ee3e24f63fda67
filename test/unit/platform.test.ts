// Deterministic platform selection (docs/design.md §3, the stacker seed): the same index and the same wanted
// platform always select the same manifest; among equal matches, the first in index order.
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors/index.js';
import {
  normalizePlatform,
  type Platform,
  parsePlatform,
  selectPlatform,
} from '../../src/manifest/platform.js';

const entry = (id: string, text: string) => {
  const [os, architecture, variant] = text.split('/') as [string, string, string | undefined];
  return { id, platform: { os, architecture, ...(variant ? { variant } : {}) } as Platform };
};

describe('platform selection', () => {
  it('takes the exact match', () => {
    const index = [entry('a', 'linux/arm/v6'), entry('b', 'linux/amd64'), entry('c', 'linux/arm64/v8')];
    expect(selectPlatform(index, parsePlatform('linux/amd64'), 'x').id).toBe('b');
    expect(selectPlatform(index, parsePlatform('linux/arm64'), 'x').id).toBe('c');
  });

  it('arm without a variant is the best available: v7 > v6 > v5, in any index order', () => {
    const variants = ['v5', 'v6', 'v7'];
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
      [0, 2, 1],
    ]) {
      const index = order.map((i) => entry(variants[i]!, `linux/arm/${variants[i]}`));
      expect(selectPlatform(index, parsePlatform('linux/arm'), 'x').id).toBe('v7');
      expect(
        selectPlatform(
          index.filter((e) => e.id !== 'v7'),
          parsePlatform('linux/arm'),
          'x',
        ).id,
      ).toBe('v6');
    }
  });

  it('an explicit arm variant prefers itself, then older compatible ones, never newer', () => {
    const index = [entry('v5', 'linux/arm/v5'), entry('v7', 'linux/arm/v7'), entry('v6', 'linux/arm/v6')];
    expect(selectPlatform(index, parsePlatform('linux/arm/v6'), 'x').id).toBe('v6');
    expect(selectPlatform([index[0]!, index[1]!], parsePlatform('linux/arm/v6'), 'x').id).toBe('v5');
    expect(() => selectPlatform([index[1]!], parsePlatform('linux/arm/v6'), 'x')).toThrow(NotFoundError);
  });

  it('arm64 without a variant means v8, and a variantless arm64 entry is v8', () => {
    expect(normalizePlatform({ os: 'linux', architecture: 'arm64' })).toEqual({
      os: 'linux',
      architecture: 'arm64',
      variant: 'v8',
    });
    expect(selectPlatform([entry('a', 'linux/arm64')], parsePlatform('linux/arm64/v8'), 'x').id).toBe('a');
  });

  it('among equal matches the first in index order wins, every time', () => {
    const index = [
      entry('first', 'linux/amd64'),
      entry('second', 'linux/amd64'),
      entry('third', 'linux/amd64'),
    ];
    for (let i = 0; i < 100; i++)
      expect(selectPlatform(index, parsePlatform('linux/amd64'), 'x').id).toBe('first');
    const reversed = [...index].reverse();
    expect(selectPlatform(reversed, parsePlatform('linux/amd64'), 'x').id).toBe('third');
  });

  it('a better match wins wherever it stands in the index', () => {
    const index = [entry('variantless', 'linux/amd64'), entry('exact', 'linux/amd64/v3')];
    expect(selectPlatform(index, parsePlatform('linux/amd64/v3'), 'x').id).toBe('exact');
    expect(selectPlatform([...index].reverse(), parsePlatform('linux/amd64/v3'), 'x').id).toBe('exact');
  });

  it('accepts architecture aliases', () => {
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  it('says which platforms the index offers when none matches', () => {
    const index = [entry('a', 'linux/arm/v6'), entry('b', 'linux/s390x')];
    expect(() => selectPlatform(index, parsePlatform('linux/riscv64'), 'index sha256:x')).toThrow(
      /no manifest for platform linux\/riscv64; the index offers linux\/arm\/v6, linux\/s390x/,
    );
  });

  it('refuses malformed --platform values', () => {
    for (const bad of ['linux', 'linux/', 'a/b/c/d', 'linux/am d64'])
      expect(() => parsePlatform(bad)).toThrow(/invalid platform/);
  });
});
