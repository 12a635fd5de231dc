// The kernel's own iommufd selftests (tools/testing/selftests/iommu from the same source
// tree) and the project's C tests in the same harness (conformance/kselftest/*.c: the
// pinning mdev's test and the tests `vfio-mc export kselftest` made from conformance paths),
// built static against the installed uapi headers so they run in the initramfs.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, conformanceDir, hashFiles, versionSlug } from '../cache.ts';
import type { KernelBuild } from '../kernel/build.ts';
import { MDEV_HEADER } from '../mdev/build.ts';
import { requireTools, runSync } from '../run.ts';

export const SELFTESTS = ['iommufd', 'iommufd_fail_nth'] as const;
export type KernelSelftest = (typeof SELFTESTS)[number];
/** A kernel selftest or a project test (the name of its conformance/kselftest/*.c file). */
export type Selftest = string;

export const projectTestDir = join(conformanceDir, 'kselftest');

/** The project's C tests: conformance/kselftest/<name>.c. */
export function projectTests(): string[] {
  return readdirSync(projectTestDir)
    .filter((f) => f.endsWith('.c'))
    .map((f) => f.slice(0, -2))
    .sort();
}

type Headers = Pick<KernelBuild, 'headers' | 'source'>;

/**
 * As tools/testing/selftests/iommu/Makefile + lib.mk build them, but -static and with the
 * headers_install output of this tree first on the include path; project tests also see the
 * iommu selftest directory (iommufd_utils.h) and the pinning mdev's uapi header.
 */
function compile(kernel: Headers, cwd: string, source: string, output: string): void {
  const selftests = join(kernel.source.dir, 'tools', 'testing', 'selftests');
  runSync(
    'gcc',
    [
      '-static',
      '-O2',
      '-Wall',
      '-Wno-unused-function',
      '-D_GNU_SOURCE',
      '-isystem',
      join(kernel.headers, 'include'),
      '-I',
      selftests,
      '-I',
      join(selftests, 'iommu'),
      '-I',
      join(conformanceDir, 'mdev'),
      '-o',
      `${output}.tmp`,
      source,
      '-lcap',
      '-lpthread',
    ],
    { cwd },
  );
  runSync('mv', [`${output}.tmp`, output]);
}

function requireCompiler(): void {
  requireTools(['gcc']);
  if (!existsSync('/usr/include/sys/capability.h')) {
    throw new Error('libcap headers are missing; install libcap-dev (conformance/setup-host.sh)');
  }
}

/** Builds (once per source version) and returns the paths of the static selftest binaries. */
export function ensureSelftests(kernel: Headers): Record<KernelSelftest, string> {
  const out = join(cacheDir(), 'selftests', versionSlug(kernel.source.version));
  const dir = join(kernel.source.dir, 'tools', 'testing', 'selftests', 'iommu');
  const paths = Object.fromEntries(SELFTESTS.map((t) => [t, join(out, t)])) as Record<KernelSelftest, string>;
  if (SELFTESTS.every((t) => existsSync(paths[t]))) return paths;
  requireCompiler();
  mkdirSync(out, { recursive: true });
  for (const t of SELFTESTS) compile(kernel, dir, `${t}.c`, paths[t]);
  return paths;
}

/** Builds the project's C tests (cached by their sources and the mdev header) and returns their paths. */
export function ensureProjectTests(kernel: Headers, names = projectTests()): Record<string, string> {
  const sources = names.map((n) => join(projectTestDir, `${n}.c`));
  for (const s of sources) if (!existsSync(s)) throw new Error(`no project test ${s}`);
  const headers = readdirSync(projectTestDir)
    .filter((f) => f.endsWith('.h'))
    .sort()
    .map((f) => join(projectTestDir, f));
  const out = join(
    cacheDir(),
    'selftests',
    `${versionSlug(kernel.source.version)}-project-${hashFiles([...sources, ...headers, MDEV_HEADER])}`,
  );
  const paths = Object.fromEntries(names.map((n) => [n, join(out, n)]));
  if (names.every((n) => existsSync(paths[n]))) return paths;
  requireCompiler();
  mkdirSync(out, { recursive: true });
  for (const n of names) compile(kernel, projectTestDir, `${n}.c`, paths[n]);
  return paths;
}

export interface SelftestResult {
  name: Selftest;
  exitCode: number | undefined;
  passed: string[];
  failed: string[];
  skipped: string[];
  /** test name -> the reason printed after "# SKIP" */
  skipReasons: Record<string, string>;
  /** "# Totals:" line of the kselftest harness, if printed */
  totals?: string;
}

/**
 * Reads kselftest TAP from the console: "ok N name", "ok N name # SKIP reason",
 * "not ok N name", between the runner's begin/end markers for each binary.
 */
export function parseSelftestOutput(lines: string[]): SelftestResult[] {
  const results: SelftestResult[] = [];
  let cur: SelftestResult | undefined;
  for (const line of lines) {
    const begin = /vfio-mc-selftest-begin (\S+)/.exec(line);
    if (begin) {
      cur = {
        name: begin[1],
        exitCode: undefined,
        passed: [],
        failed: [],
        skipped: [],
        skipReasons: {},
      };
      results.push(cur);
      continue;
    }
    if (!cur) continue;
    const end = /vfio-mc-selftest-end \S+ rc=(\d+)/.exec(line);
    if (end) {
      cur.exitCode = Number(end[1]);
      cur = undefined;
      continue;
    }
    const tap = /^(not ok|ok) \d+ (\S+)(.*)$/.exec(line);
    if (tap) {
      if (tap[1] === 'not ok') cur.failed.push(tap[2]);
      else if (/#\s*SKIP/i.test(tap[3])) {
        cur.skipped.push(tap[2]);
        cur.skipReasons[tap[2]] = tap[3].replace(/^.*#\s*SKIP\s*/i, '');
      } else cur.passed.push(tap[2]);
    }
    if (line.startsWith('# Totals:')) cur.totals = line;
  }
  return results;
}
