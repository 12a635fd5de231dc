// The exported finding tests (conformance/kselftest/exported.json) and the CLI arguments that
// write each; `npm run kselftest:export` (cli/kselftest-export.ts) writes them again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectTestDir } from '../qemu/selftests.ts';

export interface ExportedTest {
  readonly file: string;
  readonly args: readonly string[];
}

export const exportedTests = (): readonly ExportedTest[] =>
  (JSON.parse(readFileSync(join(projectTestDir, 'exported.json'), 'utf8')) as { tests: ExportedTest[] })
    .tests;

/** The CLI arguments that write one exported test to `out`. */
export const exportArgs = (t: ExportedTest, out: string) => ['export', 'kselftest', ...t.args, '--out', out];
