import { Flags } from '@oclif/core';
import { SkiffCommand } from '../src/cli/base.js';
import { UsageError } from '../src/errors/index.js';
import { formatBytes } from '../src/pull/report.js';
import { collectGarbage } from '../src/store/gc.js';

export default class Gc extends SkiffCommand {
  static override summary =
    'Remove images no name refers to, layers and objects no image references, and staging leftovers.';

  static override flags = {
    'resume-max-age': Flags.string({
      description:
        'remove what interrupted pulls kept for resuming once it is older than this (e.g. 7d, 12h, 30m, 0)',
      default: '7d',
    }),
    all: Flags.boolean({ description: 'remove all resumable state, whatever its age', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Gc);
    const resumeMaxAgeMs = flags.all ? 0 : parseAge(flags['resume-max-age']);
    const store = await this.openExistingStore(flags.store);
    const result = await collectGarbage(store, { resumeMaxAgeMs });
    if (flags.json) this.printJson(result);
    else
      process.stdout.write(
        `removed ${result.imagesRemoved} unnamed image(s), ${result.layersRemoved} layer(s), ${result.objectsRemoved} object(s), ${result.packsRewritten} pack(s) rewritten, ${result.stagingRemoved} staging dir(s), resumable state of ${result.resumeRemoved} blob(s); freed ${formatBytes(result.bytesFreed)}\n`,
      );
  }
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `45s`, or `0`. */
function parseAge(text: string): number {
  const match = /^(\d+)([smhd])?$/.exec(text.trim());
  if (!match || (match[2] === undefined && match[1] !== '0'))
    throw new UsageError(
      `--resume-max-age ${JSON.stringify(text)}: expected a number and a unit (s, m, h, d), e.g. 7d`,
    );
  return Number(match[1]) * (match[2] ? UNIT_MS[match[2]]! : 0);
}
