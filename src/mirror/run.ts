/** Runs many mirror jobs, a bounded number at once; one failed image never stops the others. */
import type { KeyObject } from 'node:crypto';
import { type CopyOptions, copyBetween, copyImage } from '../copy/image-copy.js';
import { BlobLedger } from '../copy/ledger.js';
import { asSkiffError, UsageError } from '../errors/index.js';
import { parseReference } from '../reference/index.js';
import type { MirrorJob } from './list.js';
import { ReferrerLookups } from './referrer-lookups.js';
import { carryReferrers, hasReferrers, referrerEnd } from './referrers.js';
import { emptyCounters, type MirrorResult, type MirrorSummary, summarize } from './result.js';
import { signWritten } from './sign.js';
import { eachSpread } from './spread.js';

export interface RunOptions extends Omit<CopyOptions, 'all' | 'platform' | 'id'> {
  /** Images copied at once. */
  jobs: number;
  /** Called as each image finishes (its JSON line goes out then, not at the end). */
  onResult?: ((result: MirrorResult) => void) | undefined;
  shard?: string | undefined;
  /** Carry signatures, attestations and SBOMs that refer to each image (default; --no-referrers). */
  referrers?: boolean | undefined;
  /** Sign each pushed image with this cosign key (--sign-by-sigstore-private-key). */
  signBy?: KeyObject | undefined;
}

export async function runMirror(
  jobs: MirrorJob[],
  options: RunOptions,
): Promise<{ results: MirrorResult[]; summary: MirrorSummary }> {
  const started = performance.now();
  // One record for the run: a blob shared by several items crosses the wire once.
  const ledger = options.ledger ?? new BlobLedger();
  // What the run learns of its sources' tags and referrers API: asked once, not once per image.
  const lookups = new ReferrerLookups();
  const results = await eachSpread(jobs, Math.max(1, options.jobs), async (job, id) => {
    const result = job.error
      ? failedExpansion(job)
      : await copyImage(job.source, job.destination, {
          ...options,
          all: job.all,
          platform: job.platform,
          id,
          ledger,
        });
    // A dry run writes nothing: no referrer is carried and nothing is signed.
    const writes = !result.error && !options.dryRun;
    if (writes && options.referrers !== false) await carry(job, result, { ...options, ledger }, lookups);
    if (writes && options.signBy) await sign(job, result, options.signBy, options);
    options.onResult?.(result);
    return result;
  });
  return { results, summary: summarize(results, Math.round(performance.now() - started), options.shard) };
}

/**
 * Everything at the source that refers to the manifest now at the destination follows it, copied by
 * the same engine with digests kept (no conversion, no policy: a signature is data about the image
 * the policy already judged). A failure here fails the image: a mirror that silently drops its
 * signatures would be refused by every verifying reader.
 */
async function carry(
  job: MirrorJob,
  result: MirrorResult,
  options: RunOptions,
  lookups: ReferrerLookups,
): Promise<void> {
  if (!result.manifestDigest) return;
  const destinationClient = options.destinationClient ?? options.client;
  const ends = { chunkSize: options.chunkSize, signal: options.signal };
  const src = referrerEnd(parseReference(job.source), options.client, { ...ends, lookups });
  const dstRef = parseReference(job.destination);
  const dst = referrerEnd(dstRef, destinationClient, ends);
  if (!src) return;
  try {
    if (!dst) {
      // Said only where something was left behind: most local copies have nothing to carry.
      if (await hasReferrers(src, result.manifestDigest))
        result.notes.push(
          `signatures, attestations and SBOMs that refer to it are not carried to a ${dstRef.transport}: destination`,
        );
      return;
    }
    const written = {
      digest: result.manifestDigest,
      mediaType: result.mediaType,
      children: result.indexManifests,
    };
    const carried = await carryReferrers(src, dst, written, {
      lookups,
      copy: (from, to) =>
        copyBetween(from, to, {
          ...options,
          all: true,
          platform: undefined,
          convert: undefined,
          encryption: undefined,
          trust: undefined,
          progress: undefined,
        }),
    });
    result.referrersCopied = carried.copied;
  } catch (error) {
    result.error = asSkiffError(error, { image: job.source });
  }
}

/** Our signature goes next to the carried ones, so it lands in the `.sig` manifest they built. */
async function sign(job: MirrorJob, result: MirrorResult, key: KeyObject, options: RunOptions) {
  try {
    const dst = parseReference(job.destination);
    if (dst.transport !== 'docker')
      throw new UsageError(
        `--sign-by-sigstore-private-key: a ${dst.transport}: destination holds no cosign signatures`,
      );
    if (!result.manifestDigest) return;
    const client = options.destinationClient ?? options.client;
    const written = { digest: result.manifestDigest, mediaType: result.mediaType };
    result.signed = await signWritten(client, dst, written, key, options.signal);
  } catch (error) {
    result.error = asSkiffError(error, { image: job.destination });
  }
}

function failedExpansion(job: MirrorJob): MirrorResult {
  return {
    source: job.source,
    destination: job.destination,
    upToDate: false,
    durationMs: 0,
    notes: [],
    ...emptyCounters(),
    error: job.error,
  };
}
