// Builds the test kernel: Debian's linux-source-7.3, `make tinyconfig` plus the fragment
// conformance/kernel/vfio-mc.config, into $VFIO_MC_CACHE/kernel/<version>-<fragment hash>/.
// A finished build is reused until the source version or the fragment changes. Also
// installs the uapi headers there (hdr/) and builds the static shim against them.
// Another fragment (a flavour) or a patched tree is built incrementally from this build
// (incremental.ts, patched.ts); the command line is main.ts:
//
//   npm run kernel:build [-- --jobs N] [--fragment FILE] [--patch FILE...] [--force]
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { cacheDir, defaultFragment, kernelBuildDir, versionSlug } from '../cache.ts';
import { requireTools, runStreaming, runSync } from '../run.ts';
import { checkConfig, formatMismatches } from './check-config.ts';
import { cachedSource, ensureSource, type KernelSource } from './source.ts';

export const STAMP = 'vfio-mc-build.json';
/** Output lines of a full `make bzImage` of this config, for the progress bar before the first build. */
const DEFAULT_BUILD_LINES = 1950;

export interface KernelBuild {
  dir: string;
  bzImage: string;
  /** make headers_install output (INSTALL_HDR_PATH); include/ holds linux/vfio.h, linux/iommufd.h */
  headers: string;
  source: KernelSource;
  fragment: string;
  /** seconds spent in `make bzImage` when this build was made */
  buildSeconds: number;
  buildLines: number;
  /** A patched build (kernel/patched.ts): the patches in order, and how it was made. */
  patches?: { file: string; sha256: string }[];
  /** Made from a copy of the unpatched build dir (only the patched files recompiled). */
  incremental?: boolean;
  /**
   * The coverage flavour (kernel/coverage.ts): its hash, fragment and profiled files, and the
   * directory the objects were compiled in (their .gcda paths under /sys/kernel/debug/gcov).
   */
  coverage?: { hash: string; fragment: string; objectDir: string; profile: unknown };
}

export function readStamp(dir: string): KernelBuild | undefined {
  const stamp = join(dir, STAMP);
  if (!existsSync(stamp)) return undefined;
  const build = JSON.parse(readFileSync(stamp, 'utf8')) as KernelBuild;
  return existsSync(build.bzImage) && existsSync(join(build.headers, 'include', 'linux', 'iommufd.h'))
    ? build
    : undefined;
}

/**
 * The cached build a bzImage came from (its stamp three directories up), if it is one: its
 * headers and Module.symvers are the ones a module for that kernel must be built against
 * (a different config, e.g. without lockdep, changes the layout of struct mutex).
 */
export function buildOfImage(bzImage: string): KernelBuild | undefined {
  return readStamp(join(dirname(bzImage), '..', '..', '..'));
}

/** The finished build for this fragment, if the cache has one (never downloads or builds). */
export function cachedKernel(fragment = defaultFragment): KernelBuild | undefined {
  const source = cachedSource();
  return source ? readStamp(kernelBuildDir(source.version, fragment)) : undefined;
}

/**
 * Any finished build of the cached source (its uapi headers depend on the source version only):
 * enough to build the shim for a kernel image given by the user.
 */
export function anyCachedKernel(): KernelBuild | undefined {
  const source = cachedSource();
  if (!source) return undefined;
  const root = join(cacheDir(), 'kernel');
  if (!existsSync(root)) return undefined;
  for (const d of readdirSync(root).sort()) {
    if (!d.startsWith(`${versionSlug(source.version)}-`)) continue;
    const build = readStamp(join(root, d));
    if (build) return build;
  }
  return undefined;
}

export interface BuildOptions {
  fragment?: string;
  jobs?: number;
  force?: boolean;
  log?: (msg: string) => void;
  /** show a progress bar on stderr (a line every 10 s when not a terminal) */
  progress?: boolean;
}

/**
 * `modules` with no `=m` option builds nothing but runs modpost over vmlinux, which writes the
 * Module.symvers an out-of-tree module (conformance/mdev/) is linked against; a fragment without
 * CONFIG_MODULES (the compat flavour) builds the bzImage only.
 */
const makeTargets = (dir: string) =>
  /^CONFIG_MODULES=y$/m.test(readFileSync(join(dir, '.config'), 'utf8'))
    ? ['bzImage', 'modules']
    : ['bzImage'];

/** `make O=dir -jN bzImage modules`, as argv; `wrap` runs it inside another command (unshare). */
export const makeArgs = (dir: string, jobs: number) => [`O=${dir}`, `-j${jobs}`, ...makeTargets(dir)];

export async function makeWithProgress(
  command: { cmd: string; args: string[]; cwd: string },
  expected: number,
  progress: boolean,
) {
  let lines = 0;
  let lastFile = '';
  const bar = progress
    ? new SingleBar({
        format: 'kernel build [{bar}] {percentage}% | {value}/{total} steps | {elapsed}s | {file}',
        noTTYOutput: true,
        notTTYSchedule: 10_000,
        hideCursor: true,
      })
    : undefined;
  const started = Date.now();
  bar?.start(expected, 0, { file: '', elapsed: 0 });
  await runStreaming(
    command.cmd,
    command.args,
    (line) => {
      lines++;
      const m = /^\s+[A-Z0-9_]+\s+(\S+)/.exec(line);
      if (m) lastFile = m[1];
      bar?.update(Math.min(lines, expected), {
        file: lastFile,
        elapsed: Math.round((Date.now() - started) / 1000),
      });
    },
    { cwd: command.cwd },
  );
  bar?.update(expected, { file: 'bzImage', elapsed: Math.round((Date.now() - started) / 1000) });
  bar?.stop();
  return { lines, seconds: (Date.now() - started) / 1000 };
}

/** Configures and builds the kernel unless a finished build for this source + fragment is cached. */
export async function ensureKernel(opts: BuildOptions = {}): Promise<KernelBuild> {
  const fragment = opts.fragment ?? defaultFragment;
  const log = opts.log ?? console.log;
  if (!existsSync(fragment)) throw new Error(`Kconfig fragment ${fragment} does not exist`);
  const source = ensureSource(log);
  const dir = kernelBuildDir(source.version, fragment);
  const cached = opts.force ? undefined : readStamp(dir);
  if (cached) {
    log(`kernel ${source.version} for ${fragment} is cached: ${cached.bzImage}`);
    return cached;
  }
  requireTools(['make', 'gcc', 'flex', 'bison', 'bc', 'rsync']);
  if (opts.force) rmSync(dir, { recursive: true, force: true });
  const jobs = opts.jobs ?? 2;
  configureBuild(source.dir, dir, fragment, log);
  log(`make -j${jobs} ${makeTargets(dir).join(' ')}`);
  const made = await makeWithProgress(
    { cmd: 'make', args: makeArgs(dir, jobs), cwd: source.dir },
    Number(process.env.VFIO_MC_BUILD_LINES) || DEFAULT_BUILD_LINES,
    opts.progress ?? true,
  );
  return finishBuild({ srcDir: source.dir, dir, source, fragment, made, log });
}

/**
 * The kconfig steps of a build dir: tinyconfig, the fragments merged over it in order,
 * olddefconfig (argv each, run in the source tree).
 */
export function kconfigCommands(dir: string, fragments: readonly string[]): string[][] {
  return [
    ['make', `O=${dir}`, '-s', 'tinyconfig'],
    ['scripts/kconfig/merge_config.sh', '-m', '-O', dir, join(dir, '.config'), ...fragments],
    ['make', `O=${dir}`, '-s', 'olddefconfig'],
  ];
}

/** Every line of the fragments against dir/.config: Kconfig drops options with unmet dependencies silently. */
export function checkBuiltConfig(dir: string, fragments: readonly string[]): void {
  const wanted = fragments.map((f) => readFileSync(f, 'utf8')).join('\n');
  const mismatches = checkConfig(wanted, readFileSync(join(dir, '.config'), 'utf8'));
  if (mismatches.length > 0) {
    throw new Error(
      `Kconfig dropped ${mismatches.length} option(s) of ${fragments.join(' + ')} (unmet dependencies):\n${formatMismatches(mismatches)}`,
    );
  }
}

/** tinyconfig + the fragment in a fresh build dir, checked option by option. */
export function configureBuild(srcDir: string, dir: string, fragment: string, log: (msg: string) => void) {
  mkdirSync(dir, { recursive: true });
  log(`configuring ${srcDir} in ${dir}: tinyconfig + ${fragment}`);
  for (const [cmd, ...args] of kconfigCommands(dir, [fragment])) runSync(cmd, args, { cwd: srcDir });
  checkBuiltConfig(dir, [fragment]);
}

/** headers_install and the stamp that marks the build finished (written last). */
export function finishBuild(b: {
  srcDir: string;
  dir: string;
  source: KernelSource;
  fragment: string;
  made: { lines: number; seconds: number };
  log: (msg: string) => void;
  extra?: Pick<KernelBuild, 'patches' | 'incremental' | 'coverage'>;
  /** hdr/ was installed by the caller (inside the namespace of an incremental build). */
  headersInstalled?: boolean;
}): KernelBuild {
  const bzImage = join(b.dir, 'arch', 'x86', 'boot', 'bzImage');
  if (!existsSync(bzImage)) throw new Error(`make bzImage finished but ${bzImage} is missing`);
  b.log(`bzImage built in ${b.made.seconds.toFixed(0)} s (${(statSync(bzImage).size / 1e6).toFixed(1)} MB)`);
  const headers = join(b.dir, 'hdr');
  if (!b.headersInstalled)
    runSync('make', [`O=${b.dir}`, '-s', 'headers_install', `INSTALL_HDR_PATH=${headers}`], {
      cwd: b.srcDir,
    });
  const build: KernelBuild = {
    dir: b.dir,
    bzImage,
    headers,
    source: b.source,
    fragment: b.fragment,
    buildSeconds: Math.round(b.made.seconds),
    buildLines: b.made.lines,
    ...b.extra,
  };
  writeFileSync(join(b.dir, STAMP), `${JSON.stringify(build, null, 2)}\n`);
  return build;
}
