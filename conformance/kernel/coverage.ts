// The coverage flavour of the test kernel (npm run kernel:build -- --coverage): the default
// fragment plus vfio-mc-coverage.config (CONFIG_GCOV_KERNEL), with gcc's -fprofile-arcs
// -ftest-coverage on the files the models stand for. Cached, like a patched build, beside the
// default build it starts from: $VFIO_MC_CACHE/kernel/<default build>-cov<hash>/.
//
// Which files are profiled is said per directory (GCOV_PROFILE := y) or per object
// (GCOV_PROFILE_gup.o := y) in the directory's Makefile. The shared extracted tree is never
// edited: the flavour's source is a hard-linked copy (cp -al) in which the few Makefiles it
// changes are new files (unlinked, then written), in $VFIO_MC_CACHE/src-coverage/.
//
// Incremental build (incremental.ts): a copy of the default build dir made with the flavour's
// source bound over the source path, so only what the new options or the profiling flags change
// is recompiled. Two things make that more than the profiled files:
// - CONFIG_CONSTRUCTORS (selected by GCOV_KERNEL) is in struct module (include/linux/module.h),
//   so every object that includes <linux/module.h> is recompiled (fixdep tracks the symbol);
// - scripts/Makefile.lib adds objtool's --no-unreachable to every object's command line under
//   GCOV_KERNEL, which would recompile the whole kernel. The flavour's copy of Makefile.lib keeps
//   that for KCOV only: objtool may then warn about an unreachable instruction after a noreturn
//   call in a profiled file (a warning: OBJTOOL_WERROR is off), nothing else changes.
// Without unshare (no CAP_SYS_ADMIN), or with { full: true }, it is a full build from the
// flavour's source.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, conformanceDir, defaultFragment, versionSlug } from '../cache.ts';
import { runSync } from '../run.ts';
import {
  type BuildOptions,
  configureBuild,
  ensureKernel,
  finishBuild,
  type KernelBuild,
  makeArgs,
  makeWithProgress,
  readStamp,
} from './build.ts';
import { canUnshare, makeIncrementally } from './incremental.ts';
import type { KernelSource } from './source.ts';

export const COVERAGE_FRAGMENT = join(conformanceDir, 'kernel', 'vfio-mc-coverage.config');

/**
 * What is profiled: whole directories (their own objects, not their subdirectories') and single
 * objects of mm/ that the models cite (spec/*.md, machines/): the pinning in gup.c, the
 * accounting in util.c (__account_locked_vm), the PTE paths of memory.c and the VMA code of
 * vma.c and mmap.c that bar-mmap models.
 */
export const COVERAGE_PROFILE = {
  dirs: ['drivers/vfio', 'drivers/vfio/pci', 'drivers/vfio/mdev', 'drivers/iommu/iommufd'],
  objects: { mm: ['gup.o', 'util.o', 'memory.o', 'vma.o', 'mmap.o'] } as Record<string, string[]>,
} as const;

/** The line of scripts/Makefile.lib that puts --no-unreachable on every object under GCOV_KERNEL. */
const OBJTOOL_LINE = 'objtool-args-$(or $(CONFIG_GCOV_KERNEL),$(CONFIG_KCOV))\t+= --no-unreachable';
const OBJTOOL_KCOV_ONLY = 'objtool-args-$(CONFIG_KCOV)\t+= --no-unreachable';

/** The Makefile additions, by path in the tree. */
export function makefileAdditions(): Record<string, string> {
  const add: Record<string, string> = {};
  const header = '\n# vfio-mc coverage flavour (conformance/kernel/coverage.ts)\n';
  for (const d of COVERAGE_PROFILE.dirs) add[`${d}/Makefile`] = `${header}GCOV_PROFILE := y\n`;
  for (const [d, objs] of Object.entries(COVERAGE_PROFILE.objects))
    add[`${d}/Makefile`] = header + objs.map((o) => `GCOV_PROFILE_${o} := y\n`).join('');
  return add;
}

/** The flavour's cache key: the fragment, what is profiled and how the source copy is made. */
export function coverageHash(): string {
  return createHash('sha256')
    .update(readFileSync(COVERAGE_FRAGMENT))
    .update(JSON.stringify(COVERAGE_PROFILE))
    .update(JSON.stringify(makefileAdditions()))
    .update(OBJTOOL_KCOV_ONLY)
    .digest('hex')
    .slice(0, 12);
}

/** Replaces a file of a hard-linked tree by a new file (the shared inode is left as it was). */
function rewrite(path: string, text: string): void {
  unlinkSync(path);
  writeFileSync(path, text);
}

/** The source tree with the flavour's Makefiles (made once per hash). */
export function coverageSource(source: KernelSource, hash: string): string {
  const dir = join(cacheDir(), 'src-coverage', `${versionSlug(source.version)}-cov${hash}`);
  if (existsSync(join(dir, '.vfio-mc-coverage'))) return dir;
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, '..'), { recursive: true });
  runSync('cp', ['-al', source.dir, staging]);
  for (const [file, text] of Object.entries(makefileAdditions())) {
    const path = join(staging, file);
    rewrite(path, readFileSync(path, 'utf8') + text);
  }
  const lib = join(staging, 'scripts', 'Makefile.lib');
  const libText = readFileSync(lib, 'utf8');
  if (!libText.includes(OBJTOOL_LINE))
    throw new Error(`${lib}: the objtool line the coverage flavour changes is not there: ${OBJTOOL_LINE}`);
  rewrite(lib, libText.replace(OBJTOOL_LINE, OBJTOOL_KCOV_ONLY));
  writeFileSync(join(staging, '.vfio-mc-coverage'), `${hash}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return dir;
}

export interface CoverageBuildOptions extends BuildOptions {
  /** A full build even where an incremental one is possible (to measure it). */
  full?: boolean;
}

export async function ensureCoverageKernel(opts: CoverageBuildOptions = {}): Promise<KernelBuild> {
  const log = opts.log ?? console.log;
  const hash = coverageHash();
  const base = await ensureKernel({ ...opts, force: false, fragment: defaultFragment });
  const dir = `${base.dir}-cov${hash}`;
  const cached = opts.force ? undefined : readStamp(dir);
  if (cached) {
    log(`coverage kernel is cached: ${cached.bzImage}`);
    return cached;
  }
  const srcDir = coverageSource(base.source, hash);
  const jobs = opts.jobs ?? 2;
  rmSync(dir, { recursive: true, force: true });
  const incremental = !opts.full && canUnshare();
  const extra = (objectDir: string) => ({
    coverage: { hash, fragment: COVERAGE_FRAGMENT, objectDir, profile: COVERAGE_PROFILE },
    incremental,
  });
  if (incremental) {
    log(`incremental build: copy of ${base.dir}, the flavour's source bound over ${base.source.dir}`);
    // tinyconfig + both fragments in the copy (syncconfig then touches the changed symbols only)
    const made = await makeIncrementally({
      base,
      dir,
      srcDir,
      fragments: [defaultFragment, COVERAGE_FRAGMENT],
      jobs,
      progress: opts.progress ?? true,
      lines: base.buildLines,
    });
    // Objects were compiled at the default build dir's path: their .gcda paths in the VM say so.
    return finishBuild({
      srcDir,
      dir,
      source: base.source,
      fragment: base.fragment,
      made,
      log,
      extra: extra(base.dir),
      headersInstalled: true,
    });
  }
  log(`${opts.full ? 'full build (--full)' : 'no private mount namespace: full build'} from ${srcDir}`);
  const merged = join(srcDir, '.vfio-mc-coverage.config');
  writeFileSync(
    merged,
    `${readFileSync(defaultFragment, 'utf8')}\n${readFileSync(COVERAGE_FRAGMENT, 'utf8')}`,
  );
  configureBuild(srcDir, dir, merged, log);
  const made = await makeWithProgress(
    { cmd: 'make', args: makeArgs(dir, jobs), cwd: srcDir },
    base.buildLines,
    opts.progress ?? true,
  );
  return finishBuild({
    srcDir,
    dir,
    source: base.source,
    fragment: base.fragment,
    made,
    log,
    extra: extra(dir),
  });
}

/** The cached coverage build, if there is one (never builds). */
export function cachedCoverageKernel(base: KernelBuild): KernelBuild | undefined {
  return readStamp(`${base.dir}-cov${coverageHash()}`);
}
