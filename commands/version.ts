import { Command } from '@oclif/core';

export default class Version extends Command {
  static override summary = "Print skiff's version, platform and Node version (as --version does).";

  async run(): Promise<void> {
    await this.parse(Version);
    process.stdout.write(`${this.config.userAgent}\n`);
  }
}
