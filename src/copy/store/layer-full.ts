/**
 * The `full` method: fetch the whole blob, verify its digest, decrypt and decompress it, and
 * convert it into the store's file-level form while hashing the DiffID.
 */
import fs from 'node:fs';
import { type Duplex, Readable, type Transform } from 'node:stream';
import { DigestStream } from '../../digest/index.js';
import { SkiffError, VerificationError, writeRefusedErrno } from '../../errors/index.js';
import { decompressor, type TarSizeBound, TarSizeCap } from '../../formats/compression.js';
import { tarSplitTarSize } from '../../formats/containers-tar-split.js';
import { isDigestingDecoder, WorkerDecompressStream } from '../../formats/decode-worker.js';
import type { ChunkedMetadata } from '../../formats/zstd-chunked.js';
import { ByteCounter } from '../../pull/progress.js';
import { isRetriableNetworkError } from '../../registry/http.js';
import { ingestLayer, type PrefixWriter, type StagedLayer } from '../../store/index.js';
import type { RuntimeFacts } from '../../strategy/index.js';
import { pipeChain } from '../../util/streams.js';
import type { LayerContext } from './context.js';

export async function pullFull(ctx: LayerContext): Promise<StagedLayer> {
  const { layer, format, session } = ctx;
  const decompress = decompressor(format.compression, layer.size);
  let staged: StagedLayer | undefined;
  let prefix: PrefixWriter | undefined;
  try {
    // Unwrap the key before fetching anything: a missing or wrong key fails without a download.
    const decrypt = format.encrypted ? await decryptStream(ctx) : undefined;
    const opened = await openResumable(ctx);
    prefix = opened.prefix;
    const verify = new DigestStream({
      digest: layer.digest,
      size: layer.size,
      what: `layer ${layer.digest}`,
    });
    const stages: [Readable, ...Duplex[]] = opened.counted
      ? [opened.blob, verify]
      : [opened.blob, new ByteCounter((n) => ctx.fetched(n)), verify];
    if (decrypt) stages.push(decrypt);
    if (decompress) stages.push(decompress);
    // Chunk by chunk: the decoder's windows go back to it from the ingest (`release`, below).
    stages.push(new TarSizeCap(ctx.tarSizeBound(), layer.digest, { chunkByChunk: true }));
    await pipeChain(stages, async (tar) => {
      staged = await ingestLayer(tar, {
        session,
        provenance: ctx.provenance,
        source: {
          blobDigest: layer.digest,
          mediaType: layer.mediaType,
          format: format.report,
          method: 'full',
        },
        ...ctx.fullPullHints,
        // A worker that decodes the layer hashes it too: this thread then hashes only file content.
        ...(isDigestingDecoder(decompress) ? { digestedBySource: () => decompress.digested() } : {}),
        // The decoder's windows come back to it once the ingest has read, written or copied them.
        ...(decompress instanceof WorkerDecompressStream
          ? { release: (chunk) => decompress.release(chunk) }
          : {}),
      });
    });
  } catch (error) {
    const labelled = withLayer(error, ctx, decompress);
    // Bytes that are not the blob (or a prefix that no longer is) must not be resumed from.
    if (labelled instanceof VerificationError) await prefix?.discard();
    throw labelled;
  } finally {
    await prefix?.close();
  }
  return checkDiffID(staged!, ctx);
}

/**
 * What a layer's tar may grow to: the size its verified tar-split gives (a chunked layer), unless
 * this run caught its TOC or tar-split out (then only the DiffID decides); never more than `cap`.
 */
export function tarSizeBound(
  chunked: ChunkedMetadata | undefined,
  runtime: RuntimeFacts | undefined,
  cap: number,
): TarSizeBound {
  const byCap = { bytes: cap, by: '--max-layer-size' };
  // An empty tar-split is one let go (a layer done with it: facts.ts), which bounds nothing.
  if (!chunked?.tarSplit.length || runtime?.diffIDMismatch || runtime?.tocUnverifiable) return byCap;
  try {
    const size = tarSplitTarSize(chunked.tarSplit);
    return size <= cap ? { bytes: size, by: 'its verified tar-split' } : byCap;
  } catch {
    return byCap;
  }
}

/**
 * The blob as one stream: the prefix an interrupted pull left (hashed again against its record
 * first), then the rest from the source, which is recorded as it arrives. Only the rest counts
 * as fetched. Without a resume area (a local source, a dry run) it is simply the source's stream.
 */
async function openResumable(
  ctx: LayerContext,
): Promise<{ blob: Readable; counted: boolean; prefix?: PrefixWriter }> {
  const { layer, source, signal } = ctx;
  const openFrom = source.openBlobFrom?.bind(source);
  if (!ctx.resume || !openFrom) return { blob: await source.openBlob(layer, signal), counted: false };
  const { prefix, discarded } = await ctx.resume.openPrefix(layer.digest);
  if (discarded)
    ctx.warn(`layer ${layer.digest}: resumable state discarded (${discarded}); fetching it again`);
  let held = Math.min(prefix.size, layer.size);
  let rest: AsyncIterable<Buffer> | Iterable<Buffer> = [];
  if (held < layer.size) {
    try {
      const opened = await openFrom(layer, held, signal);
      if (opened.start !== held) {
        // The source would not serve the rest alone: start over, cleanly.
        await prefix.restart();
        held = 0;
      }
      rest = opened.stream;
    } catch (error) {
      await prefix.close();
      throw error;
    }
  }
  ctx.resumed(held);
  const blob = Readable.from(resumedBlob(prefix, held, rest, ctx), { objectMode: false });
  return { blob, counted: true, prefix };
}

async function* resumedBlob(
  prefix: PrefixWriter,
  held: number,
  rest: AsyncIterable<Buffer> | Iterable<Buffer>,
  ctx: LayerContext,
): AsyncGenerator<Buffer> {
  if (held > 0) {
    const reading = fs.createReadStream(prefix.dataPath, { start: 0, end: held - 1, highWaterMark: 1 << 20 });
    for await (const piece of reading) yield piece as Buffer;
  }
  for await (const piece of rest) {
    await prefix.append(piece);
    ctx.fetched(piece.length);
    yield piece;
  }
}

/** The encryption module (and jose behind it) is loaded only for encrypted layers. */
async function decryptStream(ctx: LayerContext): Promise<Transform> {
  const { createDecryptStream, unwrapLayerKey } = await import('../../formats/encryption/index.js');
  return createDecryptStream(await unwrapLayerKey(ctx.layer.annotations ?? {}, ctx.keys));
}

/** The rebuilt or decompressed tar must hash to the DiffID the config commits to (docs/design.md §4, §5). */
export function checkDiffID(staged: StagedLayer, ctx: LayerContext): StagedLayer {
  const expected = ctx.layer.diffID;
  if (expected && staged.diffID !== expected) {
    throw new VerificationError(
      `DiffID mismatch: the config expects ${expected}, the layer's tar hashes to ${staged.diffID}`,
      {
        digest: ctx.layer.digest,
      },
    );
  }
  return staged;
}

function withLayer(error: unknown, ctx: LayerContext, decompress: Duplex | undefined): unknown {
  const digest = ctx.layer.digest;
  if (error instanceof VerificationError) return error.withContext({ digest });
  // Bytes that do not decompress are the publisher's fault, not the network's: a verification
  // failure. pipeline() destroys every stage with the first error, so a network error reaches the
  // decompressor too; only an error of its own (never a SkiffError) is relabelled.
  // A refused write (a full disk) reaches the decompressor the same way.
  if (
    decompress &&
    decompress.errored === error &&
    !(error instanceof SkiffError) &&
    !isRetriableNetworkError(error) &&
    !writeRefusedErrno(error)
  ) {
    return new VerificationError(
      `layer ${digest} does not decompress as ${ctx.format.compression}: ${(error as Error).message}`,
      {
        digest,
      },
    );
  }
  return error;
}
