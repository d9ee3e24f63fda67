/**
 * `copyImage`: one image, or a whole index with --all, from any source transport to any
 * destination transport. Blobs first, then child manifests, then the top manifest, so a reader of
 * the destination never sees a manifest whose parts are missing.
 *
 * Digests are preserved (the manifest's exact bytes are written) unless something must change:
 * --convert, a schema1 source (converted to OCI unless --preserve-schema1), or a docker-archive
 * destination (plain tar layers; the archive stores no manifest). A rewritten image is written as
 * OCI and annotated with the source digest and the conversion, which is what makes a re-run of a
 * converting mirror recognisable as up to date without converting anything again.
 *
 * Idempotence: if the destination already names what would be written, nothing else happens; and
 * every blob is HEADed before it is fetched, so blobs the destination has are never transferred.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { type Digest, sha256 } from '../digest/index.js';
import { asSkiffError, UsageError } from '../errors/index.js';
import type { EncryptionKey } from '../formats/encryption/index.js';
import {
  type Compression,
  type Descriptor,
  hostPlatform,
  type ImageManifestDocument,
  type IndexDocument,
  MediaType,
  parseManifest,
  parsePlatform,
  type Schema1Document,
} from '../manifest/index.js';
import { schema1ToOciConfig } from '../manifest/schema1.js';
import {
  type BlobJob,
  type BlobOutcome,
  type TransferEnv,
  transferBlob,
  uploadWithRetries,
} from '../mirror/blobs.js';
import type { DiffIdTap, LayerSourceBlob } from '../mirror/convert.js';
import { type ConvertTarget, copyLayerFacts, keptAnnotations, type LayerTarget } from '../mirror/layers.js';
import {
  annotationsOf,
  archiveWritten,
  CONVERSION_ANNOTATION,
  type LayerOut,
  ociManifest,
  originAnnotations,
  rewriteIndex,
  SOURCE_ANNOTATION,
  same,
  schema1BlobSums,
  type Written,
} from '../mirror/manifests.js';
import { type MirrorProgress, SILENT_MIRROR_PROGRESS } from '../mirror/progress.js';
import { emptyCounters, type MirrorResult } from '../mirror/result.js';
import { upToDateByHead } from '../mirror/up-to-date.js';
import { formatReference, type ImageReference, parseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/client.js';
import {
  type CopyLayerDecision,
  decideCopyLayer,
  decideSchema1Layer,
  layersToEncrypt,
} from '../strategy/copy.js';
import { type ImageDestination, type ImageSource, openDestination, openSource } from '../transport/index.js';
import type { ManifestHead } from '../transport/source.js';
import { enforceTrustPolicy, type TrustSettings } from '../trust/index.js';
import type { BlobLedger } from './ledger.js';
import {
  checkDiffIDCount,
  fetchConfig,
  readSourceTree,
  type SourceTree,
  schema1SizedLayers,
} from './resolve.js';
import type { StoreImageDestination } from './store-image-destination.js';

/**
 * The converters (decompression, zstd, the chunked writer) load only when a layer needs one: a
 * digest-preserving copy, and above all a re-run that copies nothing, should not pay for them.
 */
const converters = () => import('../mirror/convert.js');
/** Likewise the encryptor (jose behind it, ~0.1 s of CPU at every start otherwise). */
const encryptor = () => import('./encrypt-layer.js');

export interface CopyOptions {
  /** The client for the source; for the destination too unless destinationClient is given. */
  client: RegistryClient;
  /** The destination's own client (its credentials and TLS policy: mirror --dest-creds). */
  destinationClient?: RegistryClient | undefined;
  /** Copy the whole index rather than one platform's image. */
  all?: boolean | undefined;
  /** os/arch[/variant] to take from an index; the host's platform by default. */
  platform?: string | undefined;
  convert?: ConvertTarget | undefined;
  /** Copy schema1 manifests as they are instead of converting them to OCI. */
  preserveSchema1?: boolean | undefined;
  /** Blobs transferred at once within the image. */
  blobJobs?: number | undefined;
  /** Registry uploads in PATCH chunks of this many bytes; 0: one streaming PUT per blob. */
  chunkSize?: number | undefined;
  progress?: MirrorProgress | undefined;
  /** Identifies the image in progress events. */
  id?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Bytes a layer may decompress to when converting (--max-layer-size). */
  maxLayerSize?: number | undefined;
  /** Blobs the run has placed at registry destinations (shared by the items of one mirror run). */
  ledger?: BlobLedger | undefined;
  /** The trust policy the source must satisfy (src/trust); undefined: no policy. */
  trust?: TrustSettings | undefined;
  /** Encrypt layers for these recipients (--encryption-key), ocicrypt-compatible. */
  encryption?: LayerEncryption | undefined;
  /** Report what the copy would do, writing nothing. */
  dryRun?: boolean | undefined;
}

export interface LayerEncryption {
  keys: EncryptionKey[];
  /** --encrypt-layer indices (negative: from the end); undefined or empty: every layer. */
  layers?: number[] | undefined;
}

/**
 * What a rewritten manifest records as its conversion, and what a re-run compares: the same source
 * digest and label is the same copy (for encryption: whatever the recipients, see docs/design.md).
 */
function conversionLabel(options: Pick<CopyOptions, 'convert' | 'encryption'>, schema1: boolean): string {
  const encrypt = options.encryption
    ? `encrypt${encryptedLayersLabel(options.encryption.layers)}`
    : undefined;
  return [schema1 ? 'schema1' : undefined, options.convert, encrypt].filter(Boolean).join('+');
}

function encryptedLayersLabel(layers: number[] | undefined): string {
  return layers && layers.length > 0 ? `(${layers.join(',')})` : '';
}

/**
 * Copies one image between two references (any transport to any transport); never throws for a
 * failure of that image: it is in `result.error`.
 */
export function copyImage(source: string, destination: string, options: CopyOptions): Promise<MirrorResult> {
  return copyWith(source, destination, options, async () => {
    const srcRef = parseReference(source);
    const dstRef = parseReference(destination);
    checkOptions(options, dstRef);
    return {
      src: await openSource(srcRef, options.client),
      dst: () =>
        openDestination(dstRef, options.destinationClient ?? options.client, {
          chunkSize: options.chunkSize,
          archiveName: archiveName(srcRef),
        }),
    };
  });
}

/** Copies one image between two transports already opened (closed when done), e.g. in-memory ones. */
export function copyBetween(
  src: ImageSource,
  dst: ImageDestination,
  options: CopyOptions,
): Promise<MirrorResult> {
  return copyWith(formatReference(src.reference), formatReference(dst.reference), options, async () => {
    checkOptions(options, dst.reference);
    return { src, dst: async () => dst };
  });
}

async function copyWith(
  source: string,
  destination: string,
  options: CopyOptions,
  open: () => Promise<{ src: ImageSource; dst: () => Promise<ImageDestination> }>,
): Promise<MirrorResult> {
  const started = performance.now();
  const progress = options.progress ?? SILENT_MIRROR_PROGRESS;
  const id = options.id ?? 0;
  const result: MirrorResult = {
    source,
    destination,
    upToDate: false,
    durationMs: 0,
    notes: [],
    ...emptyCounters(),
    ...(options.dryRun ? { dryRun: true } : {}),
  };
  progress.imageStart(id, `${source} → ${destination}`);
  let src: ImageSource | undefined;
  let dst: ImageDestination | undefined;
  let copier: ImageCopier | undefined;
  try {
    const opened = await open();
    src = opened.src;
    dst = await opened.dst();
    // A re-run that HEADs prove up to date makes no counted manifest GET at the source (rate limits).
    const { unchanged, destination: destinationHead } = await upToDateByHead(src, dst, {
      ...options,
      convert: conversionLabel(options, false) || undefined,
    });
    if (unchanged) {
      Object.assign(result, {
        upToDate: true,
        manifestDigest: unchanged.digest,
        mediaType: unchanged.mediaType,
      });
      return result;
    }
    const intoStore = await storeDestination(dst);
    if (intoStore) {
      await copyIntoStore(src, intoStore, options, result);
      return result;
    }
    const tree = await readSourceTree(src, src.reference, {
      all: options.all ?? false,
      platform: options.platform ? parsePlatform(options.platform) : hostPlatform(),
      signal: options.signal,
    });
    // The source's trust policy accepts or refuses (exit 6) before any blob is copied.
    result.trust = await enforceTrustPolicy({
      settings: options.trust,
      reference: src.reference,
      manifestDigest: tree.doc.digest,
      client: options.client,
      signal: options.signal,
    });
    copier = new ImageCopier(src, src.reference, dst, options, result, destinationHead);
    await copier.run(tree);
  } catch (error) {
    result.error = asSkiffError(error, { image: source });
    await copier?.stop();
  } finally {
    result.notes.push(...(copier?.notes ?? []));
    await copier?.cleanup();
    await dst?.close().catch(() => undefined);
    await src?.close().catch(() => undefined);
    result.durationMs = Math.round(performance.now() - started);
    progress.imageDone(id, !result.error);
  }
  return result;
}

/**
 * Each blob transfer to a registry leases the run's connections to it for its uploads (and its GET
 * when the source is the same registry), so its GET and its upload never wait for each other
 * (registry/budget.ts).
 */
function transferSlot(
  src: ImageReference,
  dst: ImageReference,
  options: CopyOptions,
  signal: AbortSignal,
): TransferEnv['transferSlot'] {
  if (dst.transport !== 'docker') return undefined;
  const { budget } = (options.destinationClient ?? options.client).http;
  const sourceHost = src.transport === 'docker' ? src.endpoint : undefined;
  return (bytes, run) => budget.transfer(dst.endpoint, sourceHost, bytes, run, signal);
}

function checkOptions(options: CopyOptions, dst: ImageReference): void {
  if (options.all && options.platform) throw new UsageError('--all and --platform exclude each other');
  if (dst.transport === 'store') {
    if (options.all)
      throw new UsageError('the store keeps single images: drop --all (choose one with --platform)');
    if (options.convert)
      throw new UsageError('the store keeps layers unpacked: --convert does not apply to it');
  }
  if (options.convert && dst.transport === 'docker-archive')
    throw new UsageError('a docker archive stores uncompressed layers: --convert does not apply to it');
  if (options.encryption && options.convert)
    throw new UsageError(
      '--encryption-key and --convert exclude each other: convert in one mirror, encrypt in a second',
    );
}

/**
 * The destination as the store's, which commits layers rather than blobs. Its module (and the
 * store's with it) loads only when the destination is a store reference: a registry mirror never
 * loads it.
 */
async function storeDestination(dst: ImageDestination): Promise<StoreImageDestination | undefined> {
  if (dst.reference.transport !== 'store') return undefined;
  const { StoreImageDestination } = await import('./store-image-destination.js');
  return dst instanceof StoreImageDestination ? dst : undefined;
}

/**
 * A copy into the store is a pull (./store-copy.ts): the store reuses what it holds by DiffID and
 * by file and chunk digest and fetches chunked layers partially, which a blob copy cannot. Its
 * report is told as a mirror result: a layer fetched is a blob copied, a layer reused one skipped.
 */
async function copyIntoStore(
  src: ImageSource,
  dst: StoreImageDestination,
  options: CopyOptions,
  result: MirrorResult,
): Promise<void> {
  const before = await dst.namedManifests();
  const report = await dst.copyFrom(src, {
    platform: options.platform,
    dryRun: options.dryRun,
    jobs: options.blobJobs,
    signal: options.signal,
    maxLayerSize: options.maxLayerSize,
    trust: { settings: options.trust, client: options.client },
  });
  const fetched = report.layers.filter((l) => l.method !== 'reuse').length;
  const upToDate = fetched === 0 && before.includes(report.manifestDigest);
  Object.assign(result, {
    manifestDigest: report.manifestDigest,
    mediaType: await dst.manifestMediaType(report.configDigest, report.manifestDigest),
    upToDate,
    trust: report.trust,
  });
  // A dry run planned the layers and moved none: its counters stay 0.
  if (report.dryRun) return;
  Object.assign(result, {
    blobsCopied: fetched,
    blobsSkipped: report.layers.length - fetched,
    manifestsWritten: upToDate ? 0 : 1,
    bytes: report.bytesFetched,
  });
  result.notes.push(...report.warnings);
}

/** A docker archive written from a tagged registry image is named after it, as `docker save` does. */
function archiveName(src: ImageReference): string | undefined {
  return src.transport === 'docker' && src.tag ? `${src.registry}/${src.repository}:${src.tag}` : undefined;
}

/** A layer's decision the copy carries out (refusals have stopped it already). */
type LayerAction = Exclude<CopyLayerDecision, { action: 'refuse' }>;

type Prepared =
  | { kind: 'index'; doc: IndexDocument; children: Prepared[]; rewrite: boolean }
  | { kind: 'image'; doc: ImageManifestDocument; actions: LayerAction[]; rewrite: boolean }
  | { kind: 'schema1'; doc: Schema1Document; preserve: boolean; rewrite: boolean };

class ImageCopier {
  private readonly limit: LimitFunction;
  private readonly tasks = new Map<string, Promise<unknown>>();
  readonly notes = new Set<string>();
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  private readonly env: TransferEnv;
  private tmp: Promise<string> | undefined;
  private schema1Converted = false;

  constructor(
    private readonly src: ImageSource,
    private readonly srcRef: ImageReference,
    private readonly dst: ImageDestination,
    private readonly options: CopyOptions,
    private readonly result: MirrorResult,
    /** What the destination's manifest HEAD found before the copy (up-to-date.ts), if it was asked. */
    private readonly destinationHead?: ManifestHead | null,
  ) {
    this.limit = pLimit(options.blobJobs ?? 4);
    this.signal = options.signal ? AbortSignal.any([options.signal, this.abort.signal]) : this.abort.signal;
    const progress = options.progress ?? SILENT_MIRROR_PROGRESS;
    const id = options.id ?? 0;
    this.env = {
      dst,
      retrying: (retry, operation) => options.client.http.retrying(retry, operation),
      onStart: (n) => progress.expect(id, n),
      onBytes: (n) => progress.bytes(id, n),
      signal: this.signal,
      ledger: options.ledger,
      transferSlot: transferSlot(srcRef, dst.reference, options, this.signal),
    };
  }

  async run(tree: SourceTree): Promise<void> {
    const prepared = this.prepare(tree);
    // A dry run reads what the run reads (so its manifest GETs are the run's) and writes nothing.
    if (!this.options.dryRun) await this.dst.init();
    const existing = await this.upToDate(prepared);
    if (existing) {
      this.result.upToDate = true;
      this.result.manifestDigest = existing.digest;
      this.result.mediaType = existing.mediaType;
    } else if (this.options.dryRun) {
      // What the destination would name; a rewritten manifest's digest is known only once written.
      if (!prepared.rewrite) {
        this.result.manifestDigest = prepared.doc.digest;
        this.result.mediaType = prepared.doc.mediaType;
      }
    } else {
      const written = await this.write(prepared, 'top');
      await this.dst.commit();
      this.result.manifestDigest = written.digest;
      this.result.mediaType = written.mediaType;
    }
  }

  /** Stops in-flight transfers after a failure and waits for them, so cleanup finds nothing running. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.tasks.values()]);
  }

  async cleanup(): Promise<void> {
    if (this.tmp) await fsp.rm(await this.tmp, { recursive: true, force: true }).catch(() => undefined);
  }

  // ---- planning: decide everything, and refuse what cannot be done, before writing anything ----

  private prepare(node: SourceTree): Prepared {
    if (node.kind === 'index') {
      if (!this.dst.traits.indexes)
        throw new UsageError(
          `${this.dst.reference.transport}: holds a single image; drop --all (or choose with --platform)`,
        );
      const children = node.children.map((c) => this.prepare(c));
      return { kind: 'index', doc: node.doc, children, rewrite: children.some((c) => c.rewrite) };
    }
    if (node.doc.kind === 'schema1') return this.prepareSchema1(node.doc);
    const doc = node.doc;
    const encrypt = this.encryptedLayers(doc.layers.length);
    const actions = doc.layers.map((layer, i) => this.decideLayer(layer, encrypt[i] ?? false));
    for (const action of actions) if (action.action === 'copy' && action.note) this.notes.add(action.note);
    const rewrite =
      this.dst.traits.layers === 'uncompressed' ||
      actions.some((a) => a.action === 'convert' || a.action === 'encrypt');
    return { kind: 'image', doc, actions, rewrite };
  }

  /** Which layers --encryption-key/--encrypt-layer select (none without a key). */
  private encryptedLayers(count: number): boolean[] {
    const encryption = this.options.encryption;
    if (!encryption) return Array<boolean>(count).fill(false);
    const selected = layersToEncrypt(count, encryption.layers);
    if ('error' in selected) throw new UsageError(selected.error);
    return selected.encrypt;
  }

  /** The strategy module's decision for one layer; a refusal stops the copy before anything is written. */
  private decideLayer(layer: Descriptor, encrypt: boolean): LayerAction {
    const decision = decideCopyLayer(
      copyLayerFacts(layer, this.options.convert),
      { layers: this.dst.traits.layers },
      this.options.convert,
      encrypt,
    );
    if (decision.action === 'refuse') throw new UsageError(decision.message, { digest: layer.digest });
    return decision;
  }

  private prepareSchema1(doc: Schema1Document): Prepared {
    if (this.options.encryption)
      throw new UsageError(
        'a schema1 image cannot be encrypted in the same copy: mirror it to OCI first, then encrypt that',
      );
    if (!this.options.preserveSchema1) {
      this.schema1Converted = true;
      return { kind: 'schema1', doc, preserve: false, rewrite: true };
    }
    const dst = this.dst.reference;
    if (!this.dst.traits.schema1)
      throw new UsageError(
        `--preserve-schema1: a ${dst.transport}: destination cannot hold a schema1 manifest`,
      );
    if (this.options.convert)
      throw new UsageError('--preserve-schema1 and --convert exclude each other for a schema1 image');
    const name = doc.schema1.manifest.name;
    // The signed manifest names its repository; a registry refuses it under any other name.
    if (dst.transport === 'docker' && name !== dst.repository) {
      throw new UsageError(
        `--preserve-schema1: the schema1 manifest names repository "${name}", so ${dst.repository} would refuse it; drop the flag to convert it to OCI`,
      );
    }
    return { kind: 'schema1', doc, preserve: true, rewrite: false };
  }

  private get conversionLabel(): string {
    return conversionLabel(this.options, this.schema1Converted);
  }

  /** The annotations a rewritten manifest carries: where it came from and what was done to it. */
  private origin(sourceDigest: Digest): Record<string, string> {
    return originAnnotations(sourceDigest, this.conversionLabel);
  }

  /** What the destination holds, if it is already what this copy would produce. */
  private async upToDate(prepared: Prepared): Promise<Pick<Written, 'digest' | 'mediaType'> | undefined> {
    // The HEAD already answered for a destination without the manifest, and for one naming another
    // digest than a digest-preserving copy writes: no GET needed to learn that again. (Not for
    // schema1, whose digest skiff takes over the payload without signatures: the GET compares that.)
    const head = this.destinationHead;
    if (head === null) return undefined;
    if (
      head?.digest &&
      !prepared.rewrite &&
      prepared.kind !== 'schema1' &&
      this.dst.traits.layers === 'as-is'
    )
      return head.digest === prepared.doc.digest && head.mediaType
        ? { digest: head.digest, mediaType: head.mediaType }
        : undefined;
    const raw = await this.dst.existingManifest();
    if (!raw) return undefined;
    let existing: ReturnType<typeof parseManifest>;
    try {
      existing = parseManifest(raw.bytes, raw.contentType, 'destination manifest');
    } catch {
      return undefined;
    }
    const written = { bytes: raw.bytes, mediaType: existing.mediaType, digest: existing.digest };
    if (this.dst.traits.layers === 'uncompressed') {
      // An archive keeps no manifest: the same config (which names every DiffID) is the same image.
      const matches =
        prepared.kind === 'image' &&
        existing.kind === 'manifest' &&
        existing.config.digest === prepared.doc.config.digest;
      return matches ? written : undefined;
    }
    if (!prepared.rewrite) return existing.digest === prepared.doc.digest ? written : undefined;
    const annotations = annotationsOf(raw.bytes);
    const matches =
      annotations[SOURCE_ANNOTATION] === prepared.doc.digest &&
      annotations[CONVERSION_ANNOTATION] === this.conversionLabel;
    return matches ? written : undefined;
  }

  // ---- writing ----

  private async write(prepared: Prepared, role: 'child' | 'top'): Promise<Written> {
    let written: Written;
    if (prepared.kind === 'index') {
      const children = await Promise.all(prepared.children.map((c) => this.write(c, 'child')));
      written = prepared.rewrite
        ? rewriteIndex(prepared.doc, children, this.origin(prepared.doc.digest))
        : same(prepared.doc);
      // The referrers carried after the copy are looked for beside these too (src/mirror/referrers.ts).
      if (role === 'top') this.result.indexManifests = children.map((c) => c.digest);
    } else if (prepared.kind === 'schema1') {
      written = prepared.preserve
        ? await this.copySchema1(prepared.doc)
        : await this.convertSchema1(prepared.doc);
    } else {
      written = await this.copyManifest(prepared.doc, prepared.actions, prepared.rewrite);
    }
    // After a sibling failed, write nothing more: the copy is already being torn down.
    this.signal.throwIfAborted();
    if (await this.putManifest(written, role)) this.result.manifestsWritten++;
    return written;
  }

  /** Whether it PUT the manifest: a child another item of the run has already PUT is not PUT again. */
  private putManifest(written: Written, role: 'child' | 'top'): Promise<boolean> {
    const where = this.dst.reference;
    const put = () => this.dst.putManifest(written, role);
    if (!this.options.ledger || where.transport !== 'docker') return put().then(() => true);
    return this.options.ledger.putManifest(where, written.digest, role === 'top', put);
  }

  private async copyManifest(
    doc: ImageManifestDocument,
    actions: LayerAction[],
    rewrite: boolean,
  ): Promise<Written> {
    const converting = actions.some((a) => a.action === 'convert');
    const diffIDs = converting ? await this.configDiffIDs(doc) : undefined;
    // The config travels beside the layers, not before them: the run's connections go to the
    // largest blob first (registry/budget.ts), and a small config must not hold back its layers.
    const [, ...outs] = await Promise.all([
      converting ? undefined : this.copyBlob(doc.config),
      ...doc.layers.map((layer, i) => this.layer(layer, actions[i]!, diffIDs?.[i])),
    ]);
    if (!rewrite) return same(doc);
    const layers = outs.map((out, i) => out?.descriptor ?? doc.layers[i]!);
    if (this.dst.traits.layers === 'uncompressed') return archiveWritten(doc.config, layers);
    return ociManifest(doc.bytes, doc.config, outs, this.origin(doc.digest));
  }

  private layer(
    layer: Descriptor,
    action: LayerAction,
    diffID: Digest | undefined,
  ): Promise<LayerOut | undefined> {
    if (action.action === 'reference') {
      this.notes.add(action.note);
      return Promise.resolve(undefined);
    }
    if (action.action === 'copy') return this.copyBlob(layer).then(() => undefined);
    if (action.action === 'encrypt') return this.encryptBlob(layer);
    return this.convertBlob(layer, action.to, action.from, diffID);
  }

  /** A layer encrypted for --encryption-key's recipients; once per digest, however many manifests use it. */
  private encryptBlob(layer: Descriptor): Promise<LayerOut> {
    const keys = this.options.encryption?.keys ?? [];
    return this.once(`encrypt ${layer.digest}`, () =>
      this.limit(async () => {
        const open = (signal?: AbortSignal) => this.src.openBlob(layer, signal);
        const { encryptLayer } = await encryptor();
        const encrypted = await encryptLayer(layer, open, keys, await this.tmpDir(), this.signal);
        try {
          const { digest, size } = encrypted.descriptor;
          const job: BlobJob = {
            digest,
            size,
            open: async () => fs.createReadStream(encrypted.file, { highWaterMark: 1 << 20 }),
          };
          this.count(await transferBlob(job, this.env));
        } finally {
          await fsp.rm(encrypted.file, { force: true });
        }
        return { descriptor: encrypted.descriptor };
      }),
    );
  }

  /** A blob as it is. Each digest is transferred once per image, however many manifests use it. */
  private copyBlob(blob: { digest: Digest; size?: number | undefined; mediaType?: string }): Promise<void> {
    return this.once(`copy ${blob.digest}`, () =>
      this.limit(async () => {
        const job: BlobJob = {
          digest: blob.digest,
          size: blob.size,
          open: (signal) => this.src.openBlob({ ...blob, size: blob.size ?? 0 }, signal),
          mountFrom: this.srcRef.transport === 'docker' ? this.srcRef : undefined,
        };
        this.count(await transferBlob(job, this.env));
      }),
    );
  }

  /** A blob already in memory (a config read for its DiffIDs, a generated config). */
  private copyBytes(digest: Digest, bytes: Buffer): Promise<void> {
    return this.once(`copy ${digest}`, () =>
      this.limit(async () => {
        const job: BlobJob = { digest, size: bytes.length, open: async () => Readable.from([bytes]) };
        this.count(await transferBlob(job, this.env));
      }),
    );
  }

  /** Converting needs the DiffIDs: the config is read once, and that read also serves its copy. */
  private async configDiffIDs(doc: ImageManifestDocument): Promise<Digest[]> {
    const config = await fetchConfig(this.src, doc.config, this.signal);
    const diffIDs = checkDiffIDCount(doc, config);
    await this.copyBytes(doc.config.digest, config.bytes);
    return diffIDs;
  }

  private convertBlob(
    layer: Descriptor,
    to: LayerTarget,
    from: Compression | 'sniff',
    diffID: Digest | undefined,
  ): Promise<LayerOut> {
    const blob: LayerSourceBlob = {
      digest: layer.digest,
      size: layer.size,
      open: (signal) => this.src.openBlob(layer, signal),
      maxTarSize: this.options.maxLayerSize,
    };
    if (to === 'tar' && diffID) return this.once(`tar ${diffID}`, () => this.streamTar(blob, from, diffID));
    return this.once(`convert ${layer.digest} ${to}`, () =>
      this.limit(async () => {
        const converted = await (await converters()).convertLayer(
          blob,
          from,
          diffID,
          to,
          await this.tmpDir(),
          this.signal,
        );
        try {
          const job: BlobJob = {
            digest: converted.digest,
            size: converted.size,
            open: async () => fs.createReadStream(converted.file, { highWaterMark: 1 << 20 }),
          };
          this.count(await transferBlob(job, this.env));
        } finally {
          await fsp.rm(converted.file, { force: true });
        }
        const annotations = { ...keptAnnotations(layer.annotations), ...converted.annotations };
        return {
          descriptor: {
            mediaType: converted.mediaType,
            digest: converted.digest,
            size: converted.size,
            ...(Object.keys(annotations).length ? { annotations } : {}),
          },
          diffID: converted.diffID,
        };
      }),
    );
  }

  /** A plain tar whose name (the DiffID) is known up front streams straight through: no temporary file. */
  private streamTar(blob: LayerSourceBlob, from: Compression | 'sniff', diffID: Digest): Promise<LayerOut> {
    return this.limit(async () => {
      const job: BlobJob = {
        digest: diffID,
        open: async (signal) => (await converters()).tarStream(await blob.open(signal), blob, from),
      };
      const outcome = await transferBlob(job, this.env);
      this.count(outcome);
      return {
        descriptor: { mediaType: MediaType.dockerLayer, digest: diffID, size: outcome.bytes },
        diffID,
      };
    });
  }

  // ---- schema1 ----

  private async copySchema1(doc: Schema1Document): Promise<Written> {
    const blobSums = schema1BlobSums(doc);
    await Promise.all(blobSums.map((digest) => this.copyBlob({ digest })));
    this.notes.add('schema1 manifest copied as it is (--preserve-schema1)');
    return same(doc);
  }

  private async convertSchema1(doc: Schema1Document): Promise<Written> {
    const layers = await schema1SizedLayers(this.src, doc, this.signal);
    const decision = decideSchema1Layer({ layers: this.dst.traits.layers }, this.options.convert);
    const outs = await Promise.all(
      layers.map((layer) =>
        decision.action === 'convert'
          ? this.convertBlob(layer, decision.to, decision.from, undefined)
          : this.copyWithDiffID(layer),
      ),
    );
    const { bytes } = schema1ToOciConfig(
      doc.schema1.manifest,
      outs.map((o) => o.diffID!),
    );
    const config: Descriptor = { mediaType: MediaType.ociConfig, digest: sha256(bytes), size: bytes.length };
    await this.copyBytes(config.digest, bytes);
    this.notes.add(
      'schema1 manifest converted to OCI with DiffIDs computed from the layers (--preserve-schema1 keeps it)',
    );
    if (this.dst.traits.layers === 'uncompressed')
      return archiveWritten(
        config,
        outs.map((o) => o.descriptor),
      );
    return ociManifest(undefined, config, outs, this.origin(doc.digest));
  }

  /** A schema1 layer copied as it is, its DiffID computed on the way (or by reading it, if present). */
  private copyWithDiffID(layer: Descriptor): Promise<LayerOut> {
    return this.once(`diffid ${layer.digest}`, () =>
      this.limit(async () => {
        const blob: LayerSourceBlob = {
          ...layer,
          open: (signal) => this.src.openBlob(layer, signal),
          maxTarSize: this.options.maxLayerSize,
        };
        let found: { diffID: Digest; compression: 'gzip' | 'zstd' | 'none' };
        if (await this.dst.hasBlob(layer.digest, layer.size)) {
          found = await (await converters()).layerDiffID(blob, this.signal);
          this.count({ outcome: 'skipped', bytes: 0 });
        } else {
          let tap: DiffIdTap | undefined;
          const job: BlobJob = {
            ...blob,
            open: async (signal) => {
              tap = new (await converters()).DiffIdTap(blob);
              return pipeline(await blob.open(signal), tap, () => {});
            },
          };
          this.count({ outcome: 'copied', bytes: await uploadWithRetries(job, this.env) });
          found = tap!.diffID;
        }
        const mediaType = {
          gzip: MediaType.ociLayerGzip,
          zstd: MediaType.ociLayerZstd,
          none: MediaType.ociLayer,
        }[found.compression];
        return { descriptor: { mediaType, digest: layer.digest, size: layer.size }, diffID: found.diffID };
      }),
    );
  }

  // ---- bookkeeping ----

  private count(outcome: BlobOutcome): void {
    if (outcome.outcome === 'copied') this.result.blobsCopied++;
    else if (outcome.outcome === 'mounted') this.result.blobsMounted++;
    else this.result.blobsSkipped++;
    this.result.bytes += outcome.bytes;
  }

  /** Runs `task` once per key; concurrent callers share its promise. */
  private once<T>(key: string, task: () => Promise<T>): Promise<T> {
    let running = this.tasks.get(key) as Promise<T> | undefined;
    if (!running) {
      running = task();
      this.tasks.set(key, running);
    }
    return running;
  }

  private tmpDir(): Promise<string> {
    this.tmp ??= fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-mirror-'));
    return this.tmp;
  }
}
