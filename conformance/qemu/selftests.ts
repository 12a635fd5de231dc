// The kernel's own iommufd selftests (tools/testing/selftests/iommu from the same source
// tree), built static against the installed uapi headers so they run in the initramfs.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, versionSlug } from '../cache.ts';
import type { KernelBuild } from '../kernel/build.ts';
import { requireTools, runSync } from '../run.ts';

export const SELFTESTS = ['iommufd', 'iommufd_fail_nth'] as const;
export type Selftest = (typeof SELFTESTS)[number];

/** Builds (once per source version) and returns the paths of the static selftest binaries. */
export function ensureSelftests(kernel: Pick<KernelBuild, 'headers' | 'source'>): Record<Selftest, string> {
  const out = join(cacheDir(), 'selftests', versionSlug(kernel.source.version));
  const dir = join(kernel.source.dir, 'tools', 'testing', 'selftests', 'iommu');
  const paths = Object.fromEntries(SELFTESTS.map((t) => [t, join(out, t)])) as Record<Selftest, string>;
  if (SELFTESTS.every((t) => existsSync(paths[t]))) return paths;
  requireTools(['gcc']);
  if (!existsSync('/usr/include/sys/capability.h')) {
    throw new Error('libcap headers are missing; install libcap-dev (conformance/setup-host.sh)');
  }
  mkdirSync(out, { recursive: true });
  for (const t of SELFTESTS) {
    // As tools/testing/selftests/iommu/Makefile + lib.mk do, but -static and with the
    // headers_install output of this tree first on the include path.
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
        join(kernel.source.dir, 'tools', 'testing', 'selftests'),
        '-o',
        `${paths[t]}.tmp`,
        `${t}.c`,
        '-lcap',
        '-lpthread',
      ],
      { cwd: dir },
    );
    runSync('mv', [`${paths[t]}.tmp`, paths[t]]);
  }
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
        name: begin[1] as Selftest,
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
