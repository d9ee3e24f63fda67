/**
 * zstd-napi, loaded on first use. Its native binding costs start-up time that a run which never
 * meets zstd (a mirror re-run, `images`, a gzip pull) should not pay. Both halves are CommonJS, the
 * low-level binding without named exports Node can detect, so both are loaded with require.
 */
import { createRequire } from 'node:module';
import type * as ZstdApi from 'zstd-napi';
import type * as ZstdBinding from 'zstd-napi/binding.js';

const requireCjs = createRequire(import.meta.url);
let api: typeof ZstdApi | undefined;
let binding: typeof ZstdBinding | undefined;

/** The streaming API: CompressStream, DecompressStream. */
export function zstd(): typeof ZstdApi {
  api ??= requireCjs('zstd-napi') as typeof ZstdApi;
  return api;
}

/** The low-level binding: CCtx, DCtx and their parameters. */
export function zstdBinding(): typeof ZstdBinding {
  binding ??= requireCjs('zstd-napi/binding.js') as typeof ZstdBinding;
  return binding;
}
