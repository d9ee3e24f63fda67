import { Args, Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { progressFlag, pullProgress, resolveMode } from '../src/cli/progress.js';
import { printPullReport } from '../src/cli/pull-output.js';
import {
  connectionsFlag,
  endpointReport,
  registryClient,
  registryFlags,
  sayRateLimits,
} from '../src/cli/registry-flags.js';
import { describePolicy, trustFlags, trustSettings } from '../src/cli/trust-flags.js';
import { ExitCode, SkiffError } from '../src/errors/index.js';
import { pull } from '../src/pull/index.js';
import type { SourceEvent } from '../src/registry/client.js';
import { resolveShortName } from '../src/registry/pull-sources.js';
import { MODES, type Mode } from '../src/strategy/index.js';
import { parseSize } from '../src/util/quantities.js';

/** Keys are loaded (with jose behind them) only when given. */
async function decryptionKeys(specs: string[] | undefined) {
  if (!specs?.length) return [];
  const { loadDecryptionKeys } = await import('../src/formats/encryption/index.js');
  return loadDecryptionKeys(specs);
}

/**
 * A short name may resolve to several candidates (registries.conf's search registries, in
 * permissive or disabled mode): the first that pulls wins, and each that fails is said.
 */
async function pullFirstOf<T>(
  candidates: string[],
  say: (line: string) => void,
  pullOne: (reference: string) => Promise<T>,
): Promise<T> {
  for (const [i, candidate] of candidates.entries()) {
    const next = candidates[i + 1];
    try {
      return await pullOne(candidate);
    } catch (error) {
      if (!next || !(error instanceof SkiffError) || error.exitCode === ExitCode.storeWrite) throw error;
      say(`skiff: ${candidate}: ${error.message}; trying ${next}`);
    }
  }
  throw new Error('unreachable: no candidate to pull');
}

export default class Pull extends SkiffCommand {
  static override summary = 'Pull an image into the local store, partially where the layer format allows.';
  static override description =
    `Resolves REF (docker://, oci:DIR[:TAG] or dir:DIR; a bare name means docker://), picks the platform, decides per layer whether to reuse, pull partially or pull in full (and says why), verifies every digest and commits each layer under its DiffID.

SIZE is a layer's compressed size, as the registry stores it (as in images and inspect); FETCHED counts every byte asked for, the TOC and tar-split of a chunked layer included, and NOTE says when those made FETCHED exceed SIZE.

Exit codes: 0 success, 1 usage, 2 not found, unauthorized or blocked by registries.conf, 3 convert-only violation, 4 verification failure, 5 network failure, 6 rejected by the trust policy (containers-policy.json), 7 the store cannot be written (no space, quota, read-only).`;

  static override examples = [
    '<%= config.bin %> pull alpine',
    '<%= config.bin %> pull --platform linux/arm64 docker://127.0.0.1:5000/app:v2',
    '<%= config.bin %> pull --mode convert-only --dry-run --json oci:./layout:latest',
  ];

  static override args = { ref: Args.string({ description: 'image reference', required: true }) };

  static override flags = {
    ...registryFlags,
    platform: Flags.string({ description: 'os/arch[/variant] to select from an index (default: this host)' }),
    mode: Flags.string({
      description:
        'auto: partial where possible; full: never partial; convert-only: fail instead of any fallback the strategy table forbids (docs/design.md §5)',
      options: [...MODES],
      default: 'auto',
    }),
    jobs: Flags.integer({ description: 'layers fetched in parallel', default: 3, min: 1, max: 32 }),
    connections: connectionsFlag,
    'dry-run': Flags.boolean({
      description: 'print the plan without fetching any layer body',
      default: false,
    }),
    'max-layer-size': Flags.string({
      description:
        "refuse a layer whose tar is larger (e.g. 500MB, 10GiB) where no verified size is known; a chunked layer's tar-split gives one",
      default: '64GiB',
    }),
    'decryption-key': Flags.string({
      description: 'private key for encrypted layers, jwe:KEY.pem[:PASSWORD] (repeat the flag for more keys)',
      multiple: true,
      // One value per flag, as skopeo takes it: the reference after it stays the reference.
      multipleNonGreedy: true,
    }),
    ...trustFlags,
    progress: progressFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Pull);
    const maxLayerSize = parseSize(flags['max-layer-size'], '--max-layer-size');
    const trust = await trustSettings(flags);
    const store = await this.openStore(flags.store);
    const mode = flags['dry-run'] ? 'none' : resolveMode(flags.progress, { json: flags.json });
    const progress = pullProgress(mode, args.ref);
    const say = (line: string) => progress.write(process.stderr, `${line}\n`);
    const keys = await decryptionKeys(flags['decryption-key']);
    const sources: SourceEvent[] = [];
    const client = await registryClient(flags, flags.connections, say, sources);
    try {
      const report = await pullFirstOf(
        resolveShortName(args.ref, client.registries).candidates,
        say,
        (reference) =>
          pull({
            reference,
            store,
            client,
            platform: flags.platform,
            mode: flags.mode as Mode,
            jobs: flags.jobs,
            dryRun: flags['dry-run'],
            decryptionKeys: keys,
            progress,
            maxLayerSize,
            trust: { settings: trust, client },
          }),
      );
      progress.stop();
      // Said once, after the pull: a failure's one line stays the first and only line.
      if (flags.verbose) process.stderr.write(`skiff: ${describePolicy(trust)}\n`);
      // Which registries.conf endpoints failed and which one served, when the pull went through
      // one; what the registries said about their rate limits (RateLimit-* headers), by host.
      if (flags.json)
        this.printJson({
          ...report,
          rateLimit: client.http.rateLimits(),
          ...(sources.length > 0 ? { endpoints: sources.map(endpointReport) } : {}),
        });
      else printPullReport(report);
      if (flags.verbose) sayRateLimits([client]);
    } finally {
      progress.stop();
      await client.close();
    }
  }
}
