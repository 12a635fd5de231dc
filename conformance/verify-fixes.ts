// The patched kernel, checked end to end (npm run verify:fixes):
//  1. build it from conformance/kernel/patches/*.patch (incremental from the unpatched build);
//  2. the kernel's iommufd selftests and the project's C tests on it: the same kernel counts as
//     unpatched, and every finding test (F1, F2, U6) passes (run-selftests.ts knows which patch
//     fixes which);
//  3. conform of every fixed model variant on it: every path replays with the predicted results;
//     the U6 deadlock traces replayed --strict must diverge (their calls return now).
// Exits non-zero on the first step that fails.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from './cache.ts';
import { ensurePatchedKernel } from './kernel/patched.ts';
import { isMain, runMain } from './run.ts';

const PATCH_DIR = join(conformanceDir, 'kernel', 'patches');

/** conform runs on the patched kernel: every path of each fixed design matches. */
export const FIXED_RUNS: readonly (readonly [string, string, string?])[] = [
  ['exec-handoff', 'iommufd-change-process-noholder-mm-fixed'],
  ['ioas', 'change-process-mm-fixed'],
  [
    'ioas',
    'change-process-mm-fixed',
    'test/conformance/traces/f1-change-process-mm-fixed-exec-change-retry-unmap.paths.json',
  ],
  ['ioas', 'change-process-none-fixed'],
  ['ioas', 'change-process-none-fixed', 'test/conformance/traces/f2-fixed-none-change-then-unmap.paths.json'],
  ['container', 'current-hotplug-fixed'],
  ['device-close', 'two-unmappers-fixed'],
];

/** The U6 deadlock traces, --strict: on the patched kernel the calls return, so they must diverge. */
export const GONE_RUNS: readonly (readonly [string, string, string])[] = [
  ['container', 'current-hotplug', 'test/conformance/traces/u6-hotplug-deadlock.paths.json'],
  ['device-close', 'two-unmappers', 'test/conformance/traces/u6-two-unmappers-deadlock.paths.json'],
];

export const patchFiles = () =>
  readdirSync(PATCH_DIR)
    .filter((f) => f.endsWith('.patch'))
    .sort()
    .map((f) => join(PATCH_DIR, f));

/** Runs one step; `want` is the exit code it must give (conform: 0 all match, 1 a divergence). */
function run(what: string, args: string[], want = 0): boolean {
  console.log(`\n== ${what}: npx tsx ${args.join(' ')}`);
  const started = Date.now();
  const r = spawnSync('npx', ['tsx', ...args], { stdio: 'inherit' });
  console.log(
    `== ${what}: exit ${r.status} (want ${want}) in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  return r.status === want;
}

const conform = (model: string, variant: string, bzImage: string, paths?: string, strict = false) => [
  'cli/main.ts',
  'conform',
  model,
  '--variant',
  variant,
  '--kernel',
  bzImage,
  '--no-progress',
  ...(paths ? ['--paths', paths] : []),
  ...(strict ? ['--strict'] : []),
];

async function main(): Promise<number> {
  const started = Date.now();
  const kernel = await ensurePatchedKernel(patchFiles(), { progress: false });
  console.log(`patched kernel: ${kernel.bzImage} (make ${kernel.buildSeconds} s)`);
  const steps: [string, string[], number][] = [
    ['selftests', ['conformance/qemu/run-selftests.ts', '--kernel', kernel.bzImage], 0],
    ...FIXED_RUNS.map(([model, variant, paths]): [string, string[], number] => [
      `conform ${model}/${variant}${paths ? ` ${paths}` : ''}`,
      conform(model, variant, kernel.bzImage, paths),
      0,
    ]),
    ...GONE_RUNS.map(([model, variant, paths]): [string, string[], number] => [
      `U6 gone: conform --strict ${model}/${variant} ${paths} must diverge`,
      conform(model, variant, kernel.bzImage, paths, true),
      1,
    ]),
  ];
  const failed = steps.filter(([what, args, want]) => !run(what, args, want)).map(([what]) => what);
  console.log(`\nverify:fixes took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failed.length) console.log(`failed: ${failed.join(', ')}`);
  return failed.length ? 1 : 0;
}

if (isMain(import.meta.url)) runMain('verify:fixes', main);
