// A v1 → v2 pair of one-layer zstd:chunked images (current generation, with tar-split) where v2
// changes two of many files, so that with v1 in the store a partial pull of v2 is planned: it
// fetches the TOC, the tar-split and two files, far below the strategy's no-saving threshold.
// The changed files are far apart in the blob, so they are asked for as two ranges in one request.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
// @ts-expect-error: plain JS fixture library without type declarations
import { parsePlatform, writeImage, writeLayout } from '../../fixtures/lib/mkimage.mjs';
// @ts-expect-error: plain JS fixture library without type declarations
import { pseudoRandom } from '../../fixtures/lib/trees.mjs';
import { skopeoCopy } from './registry.js';

export const MODERN_SKOPEO = '/opt/skopeo-modern/skopeo';
export const FILES = 40;
export const FILE_SIZE = 16 * 1024;
/** The files v2 changes (indexes into the sorted file list). */
export const CHANGED = [5, 30];

export type Tree = Map<string, Buffer>;

/** The files of version `version` (1 or 2), by path inside the image. */
export function chunkedTree(version: 1 | 2): Tree {
  const tree: Tree = new Map();
  for (let i = 0; i < FILES; i++) {
    const name = `data/f${String(i).padStart(2, '0')}.bin`;
    const seed = version === 2 && CHANGED.includes(i) ? `chunked-f${i}-v2` : `chunked-f${i}`;
    tree.set(name, pseudoRandom(seed, FILE_SIZE) as Buffer);
  }
  tree.set('etc/version', Buffer.from(`v${version}\n`));
  return tree;
}

/** Writes `tree` under `work` and a reproducible tar of it (GNU or POSIX headers); returns the tar. */
export function writeTreeTar(
  work: string,
  name: string,
  tree: Tree,
  format: 'gnu' | 'posix' = 'gnu',
): string {
  const root = path.join(work, `${name}-tree`);
  for (const [file, content] of tree) {
    fs.mkdirSync(path.join(root, path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content, { mode: 0o644 });
  }
  const tar = path.join(work, `${name}.tar`);
  execFileSync('tar', [
    '--sort=name',
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--mtime=@1700000000',
    `--format=${format}`,
    ...(format === 'posix' ? ['--pax-option=delete=atime,delete=ctime'] : []),
    '-C',
    root,
    '-cf',
    tar,
    '.',
  ]);
  return tar;
}

/** Writes an uncompressed one-layer OCI layout for `tree` under `work`; returns `oci:DIR:TAG`. */
export function writeTreeLayout(work: string, name: string, tree: Tree): string {
  const tar = writeTreeTar(work, name, tree);
  const layout = path.join(work, `${name}-layout`);
  fs.rmSync(layout, { recursive: true, force: true });
  writeLayout(layout, [writeImage(layout, { platform: parsePlatform('linux/amd64'), layers: [tar] })], name);
  return `oci:${layout}:${name}`;
}

/** Pushes v1 and v2 to `registry` as `repo:v1` / `repo:v2`, encoded as zstd:chunked by skopeo 1.18. */
export async function pushChunkedPair(registry: string, repo: string, work: string): Promise<void> {
  for (const version of [1, 2] as const) {
    const source = writeTreeLayout(work, `v${version}`, chunkedTree(version));
    await skopeoCopy(
      source,
      `docker://${registry}/${repo}:v${version}`,
      ['--dest-compress', '--dest-compress-format', 'zstd:chunked'],
      MODERN_SKOPEO,
    );
  }
}
