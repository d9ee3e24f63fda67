import { Args, Flags } from '@oclif/core';
import { jsonFlag, SkiffCommand, verboseFlag } from '../src/cli/base.js';
import { printMirrorResult, printMirrorSummary, sayManifestGets } from '../src/cli/mirror-output.js';
import { mirrorProgress, progressFlag, resolveMode } from '../src/cli/progress.js';
import {
  connectionsFlag,
  endClients,
  endFlags,
  manifestGets,
  rateLimits,
  registryFlags,
  sayRateLimits,
  takeEndpoints,
} from '../src/cli/registry-flags.js';
import { trustFlags, trustSettings } from '../src/cli/trust-flags.js';
import type { LayerEncryption } from '../src/copy/index.js';
import { UsageError } from '../src/errors/index.js';
import {
  CONVERT_TARGETS,
  type ConvertTarget,
  expandList,
  formatShard,
  inShard,
  type MirrorJob,
  readMirrorList,
  resolveShard,
  resultJson,
  runMirror,
  shardKey,
  summaryJson,
  writeResultsFile,
} from '../src/mirror/index.js';
import type { SourceEvent } from '../src/registry/client.js';
import { parseSize } from '../src/util/quantities.js';

/** --encryption-key and --encrypt-layer, checked and loaded before anything is copied. */
async function encryptionSettings(
  keySpecs: string[] | undefined,
  layerSpecs: string[] | undefined,
): Promise<LayerEncryption | undefined> {
  if (!keySpecs?.length) {
    if (layerSpecs?.length) throw new UsageError('--encrypt-layer needs --encryption-key');
    return undefined;
  }
  const layers = (layerSpecs ?? []).map((spec) => {
    if (!/^-?\d+$/.test(spec.trim())) throw new UsageError(`--encrypt-layer ${spec}: not a layer index`);
    return Number(spec.trim());
  });
  // Loaded (with jose behind it) only when a key is given.
  const { loadEncryptionKeys } = await import('../src/formats/encryption/index.js');
  return { keys: await loadEncryptionKeys(keySpecs), layers };
}

export default class Mirror extends SkiffCommand {
  static override summary = 'Copy images between registries and local layouts, preserving every digest.';
  static override description =
    `Copies SRC to DST (docker://, oci:DIR[:TAG], dir:DIR, docker-archive:FILE[:NAME:TAG], store:[ROOT]NAME), or every image of --file LIST.yaml. A copy into the store (store:NAME, the default store unless [ROOT] names one) is a pull recorded under NAME: one platform (--platform), layers unpacked, reused by DiffID. Blobs the destination already has are neither downloaded nor uploaded, blobs in another repository of the same registry are mounted, and a re-run of a completed mirror transfers nothing.

Digests change only where they must: --convert, --encryption-key (layers encrypted as ocicrypt does; the config's DiffIDs stay those of the plaintext), schema1 sources (converted to OCI unless --preserve-schema1), and docker-archive destinations (plain tar layers). Converted manifests are OCI and carry the source digest in an annotation.

--dry-run reads what a run reads (HEADs first; manifests where HEADs cannot prove an image up to date) and writes nothing: each image says whether it is up to date, and the summary (manifestGets with --json) how many manifest GETs the run makes at each registry, the pulls a metering registry counts.

--shard I/N takes the items whose sha256("SOURCE DESTINATION") falls in shard I of N: any job runner can spread one list over N machines, each item done exactly once. --shard auto reads I and N from the job runner (Kubernetes Indexed Jobs, GitLab CI parallel, or SKIFF_SHARD_INDEX/SKIFF_SHARD_COUNT). Each shard's --results FILE is merged by \`skiff mirror-report\` (docs/mirror-shards.md).

Exit code: 0 when every image succeeded, otherwise the code of the first failed image in list order (1 usage, 2 not found or unauthorized, 4 verification, 5 network, 6 rejected by the trust policy).`;

  static override examples = [
    '<%= config.bin %> mirror docker://quay.io/org/app:1.2 docker://127.0.0.1:5000/org/app',
    '<%= config.bin %> mirror --all docker://docker.io/library/alpine:3.20 oci:./alpine:3.20',
    '<%= config.bin %> mirror --file images.yaml --shard 2/4 --jobs 8 --json',
  ];

  static override args = {
    source: Args.string({ description: 'image to copy (omit with --file)' }),
    destination: Args.string({ description: 'where to copy it (omit with --file)' }),
  };

  /** mirror reaches a store only through a store:[ROOT]NAME reference: no --store. */
  static override baseFlags = { json: jsonFlag, verbose: verboseFlag };

  static override flags = {
    ...registryFlags,
    ...endFlags,
    all: Flags.boolean({ description: 'copy the whole index (every platform)', default: false }),
    platform: Flags.string({ description: 'os/arch[/variant] to copy from an index (default: this host)' }),
    file: Flags.string({ description: 'YAML list of images and their destinations' }),
    shard: Flags.string({
      description: 'take share I of N of the list, e.g. 2/4, or auto: from the job runner (with --file)',
    }),
    'shard-count': Flags.integer({
      description: 'N for --shard auto where the runner exports only an index (Kubernetes Indexed Jobs)',
      min: 1,
    }),
    results: Flags.string({
      description:
        'write every result and the summary to this JSON file when the run ends (for mirror-report)',
    }),
    jobs: Flags.integer({ description: 'images copied in parallel', default: 4, min: 1, max: 64 }),
    connections: connectionsFlag,
    'blob-jobs': Flags.integer({
      description: 'blobs copied in parallel per image (they share --connections)',
      default: 4,
      min: 1,
      max: 32,
    }),
    convert: Flags.string({
      description: 'recompress layers (changes their digests)',
      options: [...CONVERT_TARGETS],
    }),
    'encryption-key': Flags.string({
      description:
        'encrypt layers for this recipient, jwe:PUBLIC_KEY.pem (RSA or EC; repeat for several), as skopeo/ocicrypt do',
      multiple: true,
    }),
    'encrypt-layer': Flags.string({
      description:
        'with --encryption-key: encrypt only these layer indices (0 first, -1 last; repeat or comma-separate)',
      multiple: true,
      delimiter: ',',
    }),
    'preserve-schema1': Flags.boolean({
      description: 'copy schema1 manifests as they are instead of converting them to OCI',
      default: false,
    }),
    'max-layer-size': Flags.string({
      description: 'refuse a layer that decompresses (to convert it) to more than this, e.g. 500MB, 10GiB',
      default: '64GiB',
    }),
    'chunk-size': Flags.integer({
      description: 'upload blobs to registries in chunks of this many MiB (0: one request per blob)',
      default: 0,
      min: 0,
    }),
    'dry-run': Flags.boolean({
      description:
        'say per image whether it is up to date (by HEAD) and count the manifest GETs the run makes at each registry; write nothing',
      default: false,
    }),
    referrers: Flags.boolean({
      description:
        'carry signatures, attestations and SBOMs that refer to each image (cosign tags, OCI referrers)',
      default: true,
      allowNo: true,
    }),
    'sign-by-sigstore-private-key': Flags.string({
      description:
        'sign each pushed image with this cosign private key (as skopeo generate-sigstore-key writes it)',
    }),
    'sign-passphrase-file': Flags.string({
      description: "the signing key's passphrase, first line of this file (default: $COSIGN_PASSWORD)",
    }),
    ...trustFlags,
    progress: progressFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Mirror);
    if (flags.file ? args.source !== undefined : args.destination === undefined)
      throw new UsageError('give SRC and DST, or --file LIST.yaml (not both)');
    if (flags.shard && !flags.file) throw new UsageError('--shard needs --file');
    if (flags['shard-count'] !== undefined && flags.shard !== 'auto')
      throw new UsageError('--shard-count goes with --shard auto');
    const maxLayerSize = parseSize(flags['max-layer-size'], '--max-layer-size');
    const trust = await trustSettings(flags);
    const encryption = await encryptionSettings(flags['encryption-key'], flags['encrypt-layer']);
    if (flags['sign-passphrase-file'] && !flags['sign-by-sigstore-private-key'])
      throw new UsageError('--sign-passphrase-file goes with --sign-by-sigstore-private-key');
    const signBy = flags['sign-by-sigstore-private-key']
      ? await signingKey(flags['sign-by-sigstore-private-key'], flags['sign-passphrase-file'])
      : undefined;
    const shard = flags.shard ? resolveShard(flags.shard, process.env, flags['shard-count']) : undefined;
    const progress = mirrorProgress(resolveMode(flags.progress, { json: flags.json }));
    const say = (line: string) => progress.write(process.stderr, `${line}\n`);
    // registries.conf endpoints of the source, taken per image into its result (`endpoints`).
    const sources: SourceEvent[] = [];
    const clients = await endClients(flags, flags.connections, say, sources);
    const json = (value: unknown) => progress.write(process.stdout, `${JSON.stringify(value)}\n`);
    try {
      let jobs: MirrorJob[] = flags.file
        ? await expandList(await readMirrorList(flags.file), {
            client: clients.source,
            all: flags.all,
            platform: flags.platform,
          })
        : [
            {
              source: args.source!,
              destination: args.destination!,
              all: flags.all,
              platform: flags.platform,
            },
          ];
      const listKeys = jobs.map((job) => shardKey(job.source, job.destination));
      const positions = listKeys.flatMap((key, position) =>
        !shard || inShard(key, shard) ? [position] : [],
      );
      jobs = positions.map((position) => jobs[position]!);
      const { results, summary } = await runMirror(jobs, {
        client: clients.source,
        destinationClient: clients.destination,
        jobs: flags.jobs,
        blobJobs: flags['blob-jobs'],
        convert: flags.convert as ConvertTarget | undefined,
        preserveSchema1: flags['preserve-schema1'],
        encryption,
        chunkSize: flags['chunk-size'] * 1024 * 1024,
        maxLayerSize,
        trust,
        dryRun: flags['dry-run'],
        referrers: flags.referrers,
        signBy,
        progress,
        shard: shard ? formatShard(shard) : undefined,
        onResult: (result) => {
          result.endpoints = takeEndpoints(sources, result.source);
          if (!flags.json) return printMirrorResult(result, progress.write);
          json(resultJson(result));
          // A failed image also gets its one `skiff:` line on stderr, as pull's errors do.
          if (result.error) printMirrorResult(result, progress.write);
        },
      });
      progress.stop();
      if (flags.results)
        await writeResultsFile(flags.results, {
          shard,
          listKeys,
          results: results.map((result, i) => ({ position: positions[i]!, result })),
          summary,
        });
      const clientsUsed = [clients.source, clients.destination];
      if (flags.json)
        this.printJson({
          ...summaryJson(summary),
          rateLimit: rateLimits(clientsUsed),
          manifestGets: manifestGets(clientsUsed),
        });
      else printMirrorSummary(summary);
      if (flags['dry-run'] && !flags.json) sayManifestGets(manifestGets(clientsUsed));
      if (flags.verbose) sayRateLimits(clientsUsed);
      if (summary.exitCode !== 0) this.exit(summary.exitCode);
    } finally {
      progress.stop();
      await clients.source.close();
      if (clients.destination !== clients.source) await clients.destination.close();
    }
  }
}

/** The cosign key to sign with; its reader (tweetnacl, scrypt) loads only for a signing mirror. */
async function signingKey(file: string, passphraseFile: string | undefined) {
  const { readCosignPrivateKey, readPassphrase } = await import('../src/trust/cosign-key.js');
  return readCosignPrivateKey(file, await readPassphrase(passphraseFile));
}
