import { Command, Flags } from '@oclif/core';

export default class Version extends Command {
  static override summary = "Print skiff's version and the Node.js it runs on.";
  static override flags = {
    json: Flags.boolean({ description: 'print machine-readable JSON on stdout', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Version);
    const version = {
      skiff: this.config.version,
      node: process.versions.node,
      platform: this.config.platform,
      arch: this.config.arch,
    };
    process.stdout.write(
      flags.json
        ? `${JSON.stringify(version)}\n`
        : // The same line as `skiff --version`: skiff/VERSION PLATFORM-ARCH node-vNODE.
          `${this.config.userAgent}\n`,
    );
  }
}
