// Issue 11, item 12: the mirror list's JSON Schema in docs/ is the zod schema's rendering (so it
// cannot drift), agrees with the zod schema on what is required and allowed, and the README's
// examples are lists skiff accepts.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mirrorListJsonSchema, parseMirrorList } from '../../src/mirror/index.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const committed = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/mirror-list.schema.json'), 'utf8'));
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The fenced blocks of a language in the README's "Mirror lists" section. */
function readmeBlocks(language: string): string[] {
  const section = readme.slice(readme.indexOf('### Mirror lists'));
  const end = section.indexOf('\n## ');
  const text = end < 0 ? section : section.slice(0, end);
  return [...text.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!);
}

const FULL: Record<string, unknown> = {
  source: 'docker://s.example/a',
  destination: 'docker://d.example/',
  tags: ['1.0'],
  'all-tags': false,
  all: false,
  platform: 'linux/arm64',
};

describe('docs/mirror-list.schema.json', () => {
  it('is what scripts/mirror-list-schema.mjs writes from the zod schema today', () => {
    expect(committed).toEqual(mirrorListJsonSchema());
  });

  it('requires and allows exactly the keys the zod schema does', () => {
    const item = committed.properties.images.items;
    expect(Object.keys(item.properties).sort()).toEqual(Object.keys(FULL).sort());
    expect(item.additionalProperties).toBe(false);
    for (const key of Object.keys(FULL)) {
      const { [key]: _dropped, ...without } = FULL;
      const accepted = () => parseMirrorList(JSON.stringify({ images: [without] }));
      if (item.required.includes(key)) expect(accepted, key).toThrow();
      else expect(accepted, key).not.toThrow();
    }
    expect(() => parseMirrorList(JSON.stringify({ images: [{ ...FULL, extra: 1 }] }))).toThrow(/extra/);
    expect(committed.required).toEqual(['images']);
    expect(committed.properties.images.minItems).toBe(1);
  });

  it('states the either-or rules the zod refinements enforce', () => {
    const rules = JSON.stringify(committed.properties.images.items.allOf);
    for (const [a, b] of [
      ['all-tags', 'tags'],
      ['all', 'platform'],
    ] as const) {
      expect(rules).toContain(JSON.stringify({ required: [a, b], properties: { [a]: { const: true } } }));
      expect(() =>
        parseMirrorList(
          JSON.stringify({
            images: [{ ...FULL, tags: undefined, [a]: true, [b]: FULL[b] ?? ['x'] }],
          }),
        ),
      ).toThrow(/not both/);
    }
  });
});

describe("the README's mirror list examples", () => {
  it('are lists skiff accepts, in YAML and in JSON', () => {
    const [yaml] = readmeBlocks('yaml');
    const [json] = readmeBlocks('json');
    const fromYaml = parseMirrorList(yaml!, 'README yaml');
    expect(fromYaml).toHaveLength(3);
    const fromJson = parseMirrorList(json!, 'README json');
    expect(fromJson).toEqual([fromYaml[0]]);
  });
});
