// Writes the exported finding tests again (conformance/kselftest/exported.json):
//   npm run kselftest:export
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../explorer/cli.ts';
import { projectTestDir } from '../qemu/selftests.ts';
import { isMain, runMain } from '../run.ts';

export interface ExportedTest {
  readonly file: string;
  readonly args: readonly string[];
}

export const exportedTests = (): readonly ExportedTest[] =>
  (JSON.parse(readFileSync(join(projectTestDir, 'exported.json'), 'utf8')) as { tests: ExportedTest[] })
    .tests;

/** The CLI arguments that write one exported test to `out`. */
export const exportArgs = (t: ExportedTest, out: string) => ['export', 'kselftest', ...t.args, '--out', out];

if (isMain(import.meta.url))
  runMain('kselftest:export', async () => {
    for (const t of exportedTests()) {
      const code = await main(exportArgs(t, join(projectTestDir, t.file)));
      if (code !== 0) return code;
      console.log(`wrote conformance/kselftest/${t.file}`);
    }
    return 0;
  });
