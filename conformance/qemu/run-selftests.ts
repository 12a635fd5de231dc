// Runs the kernel's iommufd selftests (iommufd, iommufd_fail_nth) and the project's C tests
// (conformance/kselftest/*.c, with the pinning test mdev loaded) in the test VM and reports
// pass/fail counts. Failures listed in selftest-expectations.ts (each with its reason) are
// reported but do not fail the run; any other failure, a crash or a timeout does.
//
//   npm run kernel:selftests [-- --kernel bzImage] [--only iommufd,vfio_mc_pin] [--args "-f FIXTURE"] [--verbose]
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Command } from 'commander';
import pc from 'picocolors';
import { buildOfImage, ensureKernel } from '../kernel/build.ts';
import { mdevModuleIfAny } from '../mdev/build.ts';
import { isMain, runMain } from '../run.ts';
import { baseEntries, buildInitramfs, INIT_PROLOGUE } from './initramfs.ts';
import { extractSplats } from './kernel-log.ts';
import { EXPECTED_FAILURES, expectedFailure, FINDING_TESTS } from './selftest-expectations.ts';
import {
  ensureProjectTests,
  ensureSelftests,
  parseSelftestOutput,
  projectTests,
  SELFTESTS,
  type Selftest,
  type SelftestResult,
} from './selftests.ts';
import { Vm } from './vm.ts';

/** 2 MiB huge pages for the *_hugepage and dirty-tracking *_huge variants (up to 128 MiB each). */
const HUGEPAGES = 128;

function initScript(tests: Selftest[], args: string): string {
  return `${INIT_PROLOGUE}
# Keep kernel messages off the console while the TAP output is printed; they are
# collected from the ring buffer afterwards (dmesg) and scanned for splats.
dmesg -n 1
[ -f /lib/vfio-mc-pin.ko ] && { insmod /lib/vfio-mc-pin.ko || echo "vfio-mc: insmod vfio-mc-pin.ko failed"; }
cd /selftests
for t in ${tests.join(' ')}; do
  echo "vfio-mc-selftest-begin $t"
  ./$t ${args}
  echo "vfio-mc-selftest-end $t rc=$?"
done
echo vfio-mc-dmesg-begin
dmesg
echo vfio-mc-dmesg-end
echo vfio-mc-selftests-done
reboot -f
`;
}

/** The patches (file names) of the kernel build that made this bzImage, from its stamp. */
export function kernelPatches(bzImage: string): string[] {
  const stamp = join(dirname(bzImage), '..', '..', '..', 'vfio-mc-build.json');
  if (!existsSync(stamp)) return [];
  const build = JSON.parse(readFileSync(stamp, 'utf8')) as { patches?: { file: string }[] };
  return (build.patches ?? []).map((p) => basename(p.file));
}

function report(
  results: SelftestResult[],
  patches: readonly string[],
): {
  unexpected: string[];
  total: { pass: number; fail: number; skip: number };
} {
  const unexpected: string[] = [];
  const total = { pass: 0, fail: 0, skip: 0 };
  for (const r of results) {
    total.pass += r.passed.length;
    total.fail += r.failed.length;
    total.skip += r.skipped.length;
    console.log(
      `${pc.bold(r.name)}: ${r.passed.length} passed, ${r.failed.length} failed, ${r.skipped.length} skipped` +
        ` (exit ${r.exitCode ?? 'none: did not finish'})${r.totals ? `  [${r.totals}]` : ''}`,
    );
    for (const f of r.failed) {
      const reason = expectedFailure(f, patches);
      if (reason) console.log(`  ${pc.yellow('expected fail')} ${f}: ${reason}`);
      else {
        console.log(`  ${pc.red('FAIL')} ${f}`);
        unexpected.push(f);
      }
    }
    for (const t of r.skipped) console.log(`  ${pc.dim('skip')} ${t}: ${r.skipReasons[t] ?? ''}`);
    for (const t of r.passed) {
      if (EXPECTED_FAILURES[t])
        console.log(`  ${pc.green('now passes')} ${t}: drop it from selftest-expectations.ts`);
      else if (FINDING_TESTS[t] && !patches.includes(FINDING_TESTS[t].patch))
        unexpected.push(`${t} passes without ${FINDING_TESTS[t].patch}`);
      else if (FINDING_TESTS[t]) console.log(`  ${pc.green('fixed')} ${t} (${FINDING_TESTS[t].finding})`);
    }
    if (r.exitCode === undefined) unexpected.push(`${r.name} did not finish`);
  }
  return { unexpected, total };
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('kernel:selftests')
    .description('run tools/testing/selftests/iommu in the test VM')
    .option('--kernel <bzImage>', 'kernel to boot (default: the cached build, built if missing)')
    .option('--only <names>', 'comma-separated kernel selftests and project tests (default: all)')
    .option('--args <args>', 'arguments for the kselftest harness, e.g. "-f change_process"', '')
    .option('--timeout <seconds>', 'give up after this long', '3000')
    .option('--verbose', 'copy the console to stderr', false)
    .parse(argv);
  const opts = program.opts<{
    kernel?: string;
    only?: string;
    args: string;
    timeout: string;
    verbose: boolean;
  }>();
  const known: Selftest[] = [...SELFTESTS, ...projectTests()];
  const tests = opts.only ? opts.only.split(',') : known;
  const unknown = tests.filter((t) => !known.includes(t));
  if (unknown.length > 0)
    throw new Error(`--only: no test ${unknown.join(', ')} (tests: ${known.join(', ')})`);
  if (!/^[\w .,:=/-]*$/.test(opts.args))
    throw new Error(`--args has characters the init script cannot pass: ${opts.args}`);
  const timeoutS = Number(opts.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0)
    throw new Error(`--timeout wants seconds, got ${opts.timeout}`);
  if (opts.kernel && !existsSync(opts.kernel)) throw new Error(`kernel image ${opts.kernel} does not exist`);

  const build = await ensureKernel({ progress: true });
  const kernel = opts.kernel ?? build.bzImage;
  const bins: Record<string, string> = {
    ...ensureSelftests(build),
    ...ensureProjectTests(
      build,
      tests.filter((t) => !(SELFTESTS as readonly string[]).includes(t)),
    ),
  };
  const module = mdevModuleIfAny((opts.kernel && buildOfImage(opts.kernel)) || build);
  const initrd = buildInitramfs([
    ...baseEntries(initScript(tests, opts.args)),
    { kind: 'dir', path: 'lib' },
    // the module for the kernel that boots: built against its own build dir when it is a cached one
    ...(module ? [{ kind: 'file' as const, path: 'lib/vfio-mc-pin.ko', data: readFileSync(module) }] : []),
    { kind: 'dir', path: 'selftests' },
    ...tests.map((t) => ({
      kind: 'file' as const,
      path: `selftests/${t}`,
      data: readFileSync(bins[t]),
      mode: 0o755,
    })),
  ]);
  console.log(`booting ${kernel} with ${tests.join(', ')} (TCG; this takes minutes)`);
  const started = Date.now();
  const vm = await Vm.start({
    kernel,
    initrd,
    memoryMiB: 3072,
    append: [`hugepages=${HUGEPAGES}`],
    onConsole: opts.verbose ? (l) => process.stderr.write(`${l}\n`) : undefined,
  });
  let lastBegin = 0;
  const heartbeat = setInterval(() => {
    const begun = vm.log.lines.slice(lastBegin).findIndex((l) => l.includes('vfio-mc-selftest-begin'));
    if (begun >= 0) lastBegin += begun + 1;
    const done = vm.log.lines.filter((l) => /^(not )?ok \d+ /.test(l)).length;
    console.log(`  ${Math.round((Date.now() - started) / 1000)} s: ${done} tests finished`);
  }, 30_000);
  const timer = setTimeout(() => void vm.stop(), timeoutS * 1000);
  const exit = await vm.exited;
  clearTimeout(timer);
  clearInterval(heartbeat);
  await vm.stop();
  const seconds = Math.round((Date.now() - started) / 1000);
  const lines = vm.log.lines;
  const results = parseSelftestOutput(lines);
  const patches = kernelPatches(kernel);
  if (patches.length) console.log(`kernel patches: ${patches.join(', ')}`);
  const { unexpected, total } = report(results, patches);
  const dmesgStart = lines.indexOf('vfio-mc-dmesg-begin');
  const dmesgEnd = lines.indexOf('vfio-mc-dmesg-end');
  const splats = dmesgStart >= 0 ? extractSplats(lines.slice(dmesgStart, dmesgEnd)) : undefined;
  if (splats) {
    const count = splats.split('\n').filter((l) => /cut here|BUG:|possible circular|Oops/.test(l)).length;
    console.log(`kernel log: ${count} splat(s) during the run (fault injection provokes some); first lines:`);
    console.log(splats.split('\n').slice(0, 12).join('\n'));
  }
  const finished = lines.includes('vfio-mc-selftests-done');
  console.log(
    `VM ran ${seconds} s; ${finished ? 'all selftests finished' : pc.red(`stopped early (qemu exit ${exit.code ?? exit.signal})`)}`,
  );
  if (!finished) unexpected.push('the VM did not finish the run');
  console.log(`selftests total: ${total.pass} passed, ${total.fail} failed, ${total.skip} skipped`);
  if (unexpected.length > 0) {
    console.log(pc.red(`${unexpected.length} unexpected failure(s): ${unexpected.join(', ')}`));
    return 1;
  }
  return 0;
}

if (isMain(import.meta.url)) runMain('kernel:selftests', () => main(process.argv));
