/** `skiff mirror`: copying images between registries and local layouts, digests preserved. */
export { type CopyOptions, copyImage } from '../copy/image-copy.js';
export { CONVERT_TARGETS, type ConvertTarget } from './layers.js';
export {
  expandList,
  type ListItem,
  listSourceTags,
  type MirrorJob,
  mirrorListJsonSchema,
  parseMirrorList,
  readMirrorList,
  referenceText,
} from './list.js';
export { CONVERSION_ANNOTATION, SOURCE_ANNOTATION } from './manifests.js';
export { type MirrorProgress, SILENT_MIRROR_PROGRESS } from './progress.js';
export { type MergedReport, mergeResults, type NamedResults } from './report.js';
export { type MirrorResult, type MirrorSummary, resultJson, summarize, summaryJson } from './result.js';
export { readResultsFile, writeResultsFile } from './results-file.js';
export { type RunOptions, runMirror } from './run.js';
export {
  formatShard,
  inShard,
  parseShard,
  resolveShard,
  type Shard,
  shardFromEnvironment,
  shardKey,
  shardOf,
} from './shard.js';
