// Writes docs/mirror-list.schema.json from the zod schema that validates `skiff mirror --file`
// lists (src/mirror/list.ts), so editors check lists by the same rules skiff does. Run after
// `npm run build`; test/unit/mirror-list-schema.test.ts fails when the file is out of date.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { mirrorListJsonSchema } from '../dist/src/mirror/list.js';

const root = path.resolve(import.meta.dirname, '..');
const target = path.join(root, 'docs/mirror-list.schema.json');
fs.writeFileSync(target, `${JSON.stringify(mirrorListJsonSchema(), null, 2)}\n`);
// In the repository's one format, so `biome check .` stays clean.
execFileSync(path.join(root, 'node_modules/.bin/biome'), ['format', '--write', target], { stdio: 'ignore' });
console.log(`wrote ${path.relative(process.cwd(), target)}`);
