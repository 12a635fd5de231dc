// npm run kselftest:export: writes the exported finding tests again
// (conformance/kselftest/exported.json lists them) through the CLI's `export kselftest`.
import { join } from 'node:path';
import { exportArgs, exportedTests } from '../conformance/kselftest/export-all.ts';
import { projectTestDir } from '../conformance/qemu/selftests.ts';
import { isMain, runMain } from '../conformance/run.ts';
import { main } from './main.ts';

if (isMain(import.meta.url))
  runMain('kselftest:export', async () => {
    for (const t of exportedTests()) {
      const code = await main(exportArgs(t, join(projectTestDir, t.file)));
      if (code !== 0) return code;
      console.log(`wrote conformance/kselftest/${t.file}`);
    }
    return 0;
  });
