/**
 * `mirror --results FILE`: what one run (usually one shard of a list) leaves behind for
 * `skiff mirror-report` to merge. Written atomically once the run ends, so a shard that was killed
 * leaves no file (and is run again), never half a file.
 *
 * Each file carries the keys of the WHOLE expanded list, not only its own share: a shard cannot know
 * whether the others expanded the same list (a tag may have been pushed in between), and the report
 * needs every expansion to say which items no shard mirrored.
 */
import fsp from 'node:fs/promises';
import { z } from 'zod';
import { UsageError } from '../errors/index.js';
import { writeFileAtomic } from '../util/files.js';
import { type MirrorResult, type MirrorSummary, resultJson, summaryJson } from './result.js';
import { formatShard, type Shard } from './shard.js';

export const RESULTS_FILE_TYPE = 'skiff-mirror-results';

const ItemSchema = z.looseObject({
  /** 0-based position of the item in the expanded list: the report's order and exit-code rule. */
  position: z.number().int().nonnegative(),
  source: z.string(),
  destination: z.string(),
  upToDate: z.boolean(),
  blobsCopied: z.number(),
  blobsSkipped: z.number(),
  blobsMounted: z.number(),
  manifestsWritten: z.number(),
  bytes: z.number(),
  error: z.looseObject({ exitCode: z.number().int(), message: z.string() }).nullable(),
});

const ResultsFileSchema = z.object({
  type: z.literal(RESULTS_FILE_TYPE),
  version: z.literal(1),
  /** "I/N", or null for a run over the whole list. */
  shard: z
    .string()
    .regex(/^\d+\/\d+$/)
    .nullable(),
  /** `SOURCE DESTINATION` of every item of the expanded list, in list order (shard.ts's key). */
  list: z.array(z.string()),
  items: z.array(ItemSchema),
  summary: z.looseObject({ exitCode: z.number().int() }),
  /** ISO time the run ended: of two files for one shard, the later run's is kept. */
  finishedAt: z.string(),
});

export type ResultsFile = z.infer<typeof ResultsFileSchema>;
export type ResultsItem = z.infer<typeof ItemSchema>;

export interface RunRecord {
  shard: Shard | undefined;
  listKeys: string[];
  /** This run's results, each with its position in `listKeys`. */
  results: Array<{ position: number; result: MirrorResult }>;
  summary: MirrorSummary;
}

export async function writeResultsFile(file: string, run: RunRecord): Promise<void> {
  const document = {
    type: RESULTS_FILE_TYPE,
    version: 1,
    shard: run.shard ? formatShard(run.shard) : null,
    list: run.listKeys,
    items: run.results.map(({ position, result }) => ({ position, ...resultJson(result) })),
    summary: summaryJson(run.summary),
    finishedAt: new Date().toISOString(),
  };
  await writeFileAtomic(file, `${JSON.stringify(document, null, 1)}\n`);
}

export async function readResultsFile(file: string): Promise<ResultsFile> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`${file}: cannot read results file (${(error as Error).message})`, { path: file });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new UsageError(`${file}: not JSON (is it a results file of \`skiff mirror --results\`?)`, {
      path: file,
    });
  }
  const parsed = ResultsFileSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') || 'document';
    throw new UsageError(`${file}: not a skiff mirror results file: ${where}: ${issue?.message}`, {
      path: file,
    });
  }
  return parsed.data;
}
