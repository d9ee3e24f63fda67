import { Args, Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { registryClient, registryFlags } from '../src/cli/registry-flags.js';
import { table } from '../src/cli/table.js';
import { asSkiffError, shortDigest } from '../src/errors/index.js';
import { type InspectReport, inspect } from '../src/inspect/index.js';
import { formatBytes } from '../src/pull/report.js';

export default class Inspect extends SkiffCommand {
  static override summary = "Describe an image: manifest kind, platforms, and each layer's format.";
  static override description =
    'Looks in the store first (by name or digest); otherwise, or with --remote, at the source (registry, oci:, dir:). Chunked layers have their TOC fetched and verified to count its entries.';

  static override args = {
    ref: Args.string({ description: 'image name, digest or reference', required: true }),
  };

  static override flags = {
    ...registryFlags,
    platform: Flags.string({ description: 'os/arch[/variant] to describe from an index' }),
    remote: Flags.boolean({
      description: 'inspect the source even if the store has the image',
      default: false,
    }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Inspect);
    const store = await this.openStore(flags.store);
    const client = await registryClient(flags);
    try {
      const report = await inspect(store, client, args.ref, {
        platform: flags.platform,
        remote: flags.remote,
      });
      if (flags.json) this.printJson(report);
      else process.stdout.write(`${describe(report)}\n`);
    } catch (error) {
      // Named as pull names it: the image as the user wrote it, then the cause.
      throw asSkiffError(error, { image: args.ref });
    } finally {
      await client.close();
    }
  }
}

function describe(r: InspectReport): string {
  const lines = [
    `${r.reference} (${r.location === 'store' ? 'in the store' : 'at the source'})`,
    `manifest  ${r.manifestKind} ${r.manifestDigest}`,
  ];
  if (r.indexDigest) lines.push(`index     ${r.indexDigest}`);
  if (r.platforms) lines.push(`platforms ${r.platforms.join(', ')}`);
  lines.push(`platform  ${r.platform}`);
  if (r.configDigest) lines.push(`config    ${r.configDigest}`);
  if (r.names?.length) lines.push(`names     ${r.names.join(', ')}`);
  lines.push(
    table(
      ['LAYER', 'SIZE', 'FORMAT', 'TOC', 'PARTIAL', 'MEDIA TYPE'],
      r.layers.map((l) => [
        shortDigest(l.digest),
        formatBytes(l.size),
        l.format,
        l.chunked
          ? `${shortDigest(l.chunked.tocDigest)}${l.chunked.entries !== undefined ? ` (${l.chunked.entries} entries)` : ''}`
          : l.encryption
            ? l.encryption.recipients.map((x) => `${x.algorithm}/${x.keyType}`).join(' ')
            : '-',
        l.chunked
          ? l.chunked.partialPossible
            ? 'yes'
            : `no${l.chunked.note ? `: ${l.chunked.note}` : ''}`
          : 'no',
        l.mediaType,
      ]),
    ),
  );
  return lines.join('\n');
}
