// Measures boot to ready: from starting QEMU to the shim supervisor's hello on port 1.
//
//   npx tsx conformance/qemu/boot-time.ts [--runs 3] [--kernel bzImage]
import { Command } from 'commander';
import { isMain, runMain } from '../run.ts';
import { openTarget } from '../target.ts';

async function main(argv: string[]): Promise<number> {
  const opts = new Command()
    .name('boot-time')
    .option('--runs <n>', 'boots to measure', '3')
    .option('--kernel <bzImage>', 'kernel to boot (default: the cached build)')
    .parse(argv)
    .opts<{ runs: string; kernel?: string }>();
  const runs = Number(opts.runs);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs wants a positive integer, got ${opts.runs}`);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = await openTarget({ kind: 'qemu', kernel: opts.kernel });
    times.push(t.bootMs);
    // a first call proves the actor path works, not only the hello
    const r = await t.actor('probe').call('getpid', {});
    await t.close();
    console.log(`boot ${i + 1}: ready in ${t.bootMs} ms (first actor call errno ${r.errno})`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    `boot to ready: min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`,
  );
  return 0;
}

if (isMain(import.meta.url)) runMain('boot-time', () => main(process.argv));
