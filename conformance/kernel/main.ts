// npm run kernel:build [-- --jobs N] [--fragment FILE | --patch FILE... | --coverage [--full]] [--force]
//
// The test kernel (build.ts), a flavour of it (--fragment: incremental.ts), the coverage flavour
// (--coverage: coverage.ts) or a patched one (--patch: patched.ts), then the static shim against
// its headers.
import { Command } from 'commander';
import { defaultFragment } from '../cache.ts';
import { isMain, runMain } from '../run.ts';
import { ensureShim } from '../shim/build.ts';
import { ensureCoverageKernel } from './coverage.ts';
import { ensureFlavour } from './incremental.ts';
import { ensurePatchedKernel } from './patched.ts';

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('kernel:build')
    .description('download linux-source-7.3, build the test kernel and the shim into $VFIO_MC_CACHE')
    .option(
      '--fragment <file>',
      'Kconfig fragment merged over tinyconfig (another than the default: a flavour, built incrementally)',
      defaultFragment,
    )
    .option(
      '-j, --jobs <n>',
      'parallel make jobs',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--jobs wants a positive integer, got ${v}`);
        return n;
      },
      2,
    )
    .option('--force', 'rebuild even when a cached build exists', false)
    .option('--patch <files...>', 'apply these patches (git format-patch files, in order): a patched build')
    .option(
      '--coverage',
      'the coverage flavour (gcov on the VFIO and iommufd files, kernel/coverage.ts)',
      false,
    )
    .option('--full', 'with --coverage: a full build even where an incremental one is possible', false)
    .option('--no-progress', 'no progress bar')
    .parse(argv);
  const opts = program.opts<{
    fragment: string;
    jobs: number;
    force: boolean;
    progress: boolean;
    patch?: string[];
    coverage: boolean;
    full: boolean;
  }>();
  if (opts.coverage && (opts.patch || opts.fragment !== defaultFragment))
    throw new Error('--coverage is a flavour of the default fragment: not with --patch or --fragment');
  const started = Date.now();
  const kernel = opts.coverage
    ? await ensureCoverageKernel(opts)
    : opts.patch
      ? await ensurePatchedKernel(opts.patch, opts)
      : await ensureFlavour(opts);
  const shim = ensureShim(kernel);
  console.log(`bzImage: ${kernel.bzImage}`);
  console.log(`headers: ${kernel.headers}/include`);
  console.log(`shim:    ${shim}`);
  console.log(`kernel:build took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return 0;
}

if (isMain(import.meta.url)) runMain('kernel:build', () => main(process.argv));
