// Builds the pinning test mdev (vfio-mc-pin.ko) out of tree against a cached kernel build,
// into $VFIO_MC_CACHE/mdev/<kernel build dir>-<hash of the driver sources>/. Changing the
// driver rebuilds only the module (seconds), never the kernel.
//
//   npx tsx conformance/mdev/build.ts      prints the path of the module, building it if needed
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { cacheDir, conformanceDir, hashFiles } from '../cache.ts';
import { cachedKernel, type KernelBuild } from '../kernel/build.ts';
import { isMain, requireTools, runMain, runSync } from '../run.ts';

const mdevSrc = join(conformanceDir, 'mdev');
export const MODULE = 'vfio-mc-pin.ko';
/** The uapi header of the driver, for the shim and the C tests. */
export const MDEV_HEADER = join(mdevSrc, 'vfio-mc-pin.h');

export function mdevSources(): string[] {
  return ['vfio-mc-pin.c', 'vfio-mc-pin.h', 'Kbuild'].map((f) => join(mdevSrc, f));
}

/** The module for this build, or undefined for a kernel built without CONFIG_MODULES (the compat flavour). */
export function mdevModuleIfAny(kernel: Pick<KernelBuild, 'dir' | 'source'>): string | undefined {
  const config = join(kernel.dir, '.config');
  if (existsSync(config) && !/^CONFIG_MODULES=y$/m.test(readFileSync(config, 'utf8'))) return undefined;
  return ensureMdevModule(kernel);
}

/** Path of vfio-mc-pin.ko for this kernel build, building it when the driver or the build changed. */
export function ensureMdevModule(kernel: Pick<KernelBuild, 'dir' | 'source'>): string {
  const out = join(cacheDir(), 'mdev', `${basename(kernel.dir)}-${hashFiles(mdevSources())}`);
  const ko = join(out, MODULE);
  if (existsSync(ko)) return ko;
  if (!existsSync(join(kernel.dir, 'Module.symvers'))) {
    throw new Error(
      `kernel build ${kernel.dir} has no Module.symvers (built without CONFIG_MODULES or without ` +
        '`make modules`); run `npm run kernel:build`',
    );
  }
  requireTools(['make', 'gcc']);
  // M= builds in place: build in a private copy so that the repository stays clean.
  const staging = `${out}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  for (const f of mdevSources()) copyFileSync(f, join(staging, basename(f)));
  runSync('make', ['-s', `O=${kernel.dir}`, `M=${staging}`, 'modules'], { cwd: kernel.source.dir });
  if (!existsSync(join(staging, MODULE))) throw new Error(`make M=${staging} modules produced no ${MODULE}`);
  rmSync(out, { recursive: true, force: true });
  runSync('mv', [staging, out]);
  return ko;
}

if (isMain(import.meta.url))
  runMain('mdev:build', () => {
    const kernel = cachedKernel();
    if (!kernel) throw new Error('no cached kernel build: run `npm run kernel:build` first');
    console.log(ensureMdevModule(kernel));
    return 0;
  });
