import { Args, Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { registryClient, registryFlags } from '../src/cli/registry-flags.js';
import { table } from '../src/cli/table.js';
import { asSkiffError, UsageError } from '../src/errors/index.js';
import { namesDigest } from '../src/images/index.js';
import { type InspectReport, inspect, inspectRaw } from '../src/inspect/index.js';
import { defaultStorePath, noStoreError, Store } from '../src/store/index.js';
import { formatBytes, shortDigest } from '../src/util/present.js';

export default class Inspect extends SkiffCommand {
  static override summary = "Describe an image: manifest kind, platforms, and each layer's format.";
  static override description =
    `Looks in the store first (by name or digest); otherwise, or with --remote, at the source (registry, oci:, dir:). Chunked layers have their TOC fetched and verified to count its entries. SIZE is a layer's compressed size, as the registry stores the blob and the manifest states it.

--raw prints the manifest's bytes exactly as served (at the source: the document REF names, an index for a multi-arch tag unless --platform is given); --config prints the config's bytes. Neither adds a newline.

Inspecting never creates a store: without one, only the source is looked at.`;

  static override args = {
    ref: Args.string({ description: 'image name, digest or reference', required: true }),
  };

  static override flags = {
    ...registryFlags,
    platform: Flags.string({
      description:
        'os/arch[/variant] to describe from an index, or of a stored name pulled for several platforms',
    }),
    raw: Flags.boolean({
      description: 'print the manifest bytes exactly as served',
      default: false,
    }),
    config: Flags.boolean({ description: 'print the config bytes exactly as served', default: false }),
    remote: Flags.boolean({
      description: 'inspect the source even if the store has the image',
      default: false,
    }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Inspect);
    if (flags.raw && flags.config) throw new UsageError('give --raw or --config, not both');
    const storePath = flags.store ?? defaultStorePath();
    const store = await Store.find(storePath);
    // A digest can only name a stored image: without a store there is nothing to look at.
    if (!store && !flags.remote && namesDigest(args.ref)) throw noStoreError(storePath);
    const client = await registryClient(flags);
    try {
      const options = { platform: flags.platform, remote: flags.remote };
      if (flags.raw || flags.config) {
        const bytes = await inspectRaw(store, client, args.ref, flags.raw ? 'manifest' : 'config', options);
        await new Promise<void>((resolve, reject) =>
          process.stdout.write(bytes, (error) => (error ? reject(error) : resolve())),
        );
        return;
      }
      const report = await inspect(store, client, args.ref, options);
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
