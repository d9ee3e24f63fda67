#!/usr/bin/env node
// Where a `node --cpu-prof` profile's time went: self time per function (name, file, line), the
// top N, and the total time under each of skiff's source files (self time of the functions
// defined there). `node bench/lib/profile-summary.mjs FILE.cpuprofile [N]`.
import fs from 'node:fs';

const [file, top = '30'] = process.argv.slice(2);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const selfMicros = new Map();
profile.samples.forEach((id, i) => {
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});

const byFunction = new Map();
const byFile = new Map();
for (const [id, micros] of selfMicros) {
  const { callFrame } = nodes.get(id);
  const where = callFrame.url ? callFrame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/') : '';
  const key = `${callFrame.functionName || '(anonymous)'} ${where}:${callFrame.lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  const fileKey = where || callFrame.functionName;
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + micros);
}

const total = [...selfMicros.values()].reduce((a, b) => a + b, 0);
const show = (map) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(top))
    .map(
      ([k, v]) =>
        `${(v / 1e6).toFixed(2).padStart(8)} s  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`,
    )
    .join('\n');
console.log(`${file}: ${(total / 1e6).toFixed(2)} s of samples\n\nby function (self):\n${show(byFunction)}`);
console.log(`\nby file (self):\n${show(byFile)}`);
