import { Args } from '@oclif/core';
import { jsonFlag, SkiffCommand } from '../src/cli/base.js';
import { printMergedReport } from '../src/cli/mirror-output.js';
import { UsageError } from '../src/errors/index.js';
// The report's own modules, not the mirror engine behind src/mirror/index.ts.
import { mergeResults } from '../src/mirror/report.js';
import { readResultsFile } from '../src/mirror/results-file.js';

export default class MirrorReport extends SkiffCommand {
  static override summary = 'Merge the --results files of the shards of one mirror list into one account.';
  static override description =
    `Reads the results files that \`skiff mirror --file LIST --shard I/N --results FILE\` wrote, checks that together they account for every item of the list exactly once (every shard 1..N present, no item missed or taken twice), and prints one summary.

Of two files for the same shard (a shard run again), the later run's is used.

Exit code: 1 when the files do not account for every item exactly once; otherwise mirror's rule: 0, or the code of the first failed item in list order.`;

  static override examples = [
    '<%= config.bin %> mirror-report results/shard-*.json',
    '<%= config.bin %> mirror-report --json results/*.json',
  ];

  static override strict = false;
  static override args = { files: Args.string({ description: 'results files', required: true }) };
  static override baseFlags = { json: jsonFlag };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(MirrorReport);
    const names = argv as string[];
    if (names.length === 0) throw new UsageError('give the results files to merge');
    const files = await Promise.all(
      names.map(async (name) => ({ name, document: await readResultsFile(name) })),
    );
    const report = mergeResults(files);
    if (flags.json) this.printJson({ type: 'mirror-report', ...report });
    else printMergedReport(report);
    if (report.exitCode !== 0) {
      const incomplete = report.problems.length + report.unaccounted.length;
      const why = incomplete
        ? `the results do not account for every item exactly once (${incomplete} problem(s))`
        : `${report.summary.failed} item(s) failed`;
      process.stderr.write(`skiff: mirror-report: ${why}\n`);
      this.exit(report.exitCode);
    }
  }
}
