import { Args } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { registryClient, registryFlags } from '../src/cli/registry-flags.js';
import { listSourceTags } from '../src/mirror/list.js';

export default class ListTags extends SkiffCommand {
  static override summary = 'List the tags of a repository, one a line.';
  static override description =
    'REPO is docker://HOST/NAME (or a bare name, normalised as Docker does) or oci:DIR. A registry is asked for every page of its tag list, following its Link headers. Tags are sorted.';

  static override examples = [
    '<%= config.bin %> list-tags docker://127.0.0.1:5000/org/app',
    '<%= config.bin %> list-tags --json quay.io/org/tool',
  ];

  static override args = {
    repository: Args.string({ description: 'repository, without a tag or digest', required: true }),
  };

  static override flags = { ...registryFlags };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ListTags);
    const client = await registryClient(flags);
    try {
      const listed = await listSourceTags(args.repository, client);
      if (flags.json) this.printJson(listed);
      else process.stdout.write(listed.tags.map((tag) => `${tag}\n`).join(''));
    } finally {
      await client.close();
    }
  }
}
