// Builds the static shim with conformance/shim/Makefile against the uapi headers installed
// from the kernel tree under test, into $VFIO_MC_CACHE/shim/<version>-<hash of the shim sources>/,
// and checks the layout it was built with against those headers (layout.ts) before using it.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, conformanceDir, hashFiles, versionSlug } from '../cache.ts';
import type { KernelBuild } from '../kernel/build.ts';
import { requireTools, runSync } from '../run.ts';
import { verifyShimLayout } from './layout.ts';

const shimSrc = join(conformanceDir, 'shim');

export function shimSources(): string[] {
  return [
    join(shimSrc, 'vfio-mc-shim.c'),
    join(shimSrc, 'Makefile'),
    join(conformanceDir, 'mdev', 'vfio-mc-pin.h'),
  ];
}

/**
 * Path of the static shim binary, building it when the sources or the kernel version changed.
 * A fresh build whose layout differs from the tree's headers is deleted and the build fails.
 */
export function ensureShim(kernel: Pick<KernelBuild, 'headers' | 'source'>): string {
  const out = join(cacheDir(), 'shim', `${versionSlug(kernel.source.version)}-${hashFiles(shimSources())}`);
  const binary = join(out, 'vfio-mc-shim');
  if (existsSync(binary)) return binary;
  requireTools(['make', 'gcc']);
  if (!existsSync('/usr/lib/x86_64-linux-gnu/libc.a') && !existsSync('/usr/lib/libc.a')) {
    throw new Error('static libc (libc.a) is missing; install libc6-dev (conformance/setup-host.sh)');
  }
  runSync('make', ['-s', `HDR=${kernel.headers}`, `KSRC=${kernel.source.dir}`, `OUT=${out}`], {
    cwd: shimSrc,
  });
  if (!existsSync(binary)) throw new Error(`make in ${shimSrc} produced no ${binary}`);
  try {
    verifyShimLayout(binary, shimSources()[0], kernel);
  } catch (e) {
    rmSync(binary, { force: true });
    throw e;
  }
  return binary;
}
