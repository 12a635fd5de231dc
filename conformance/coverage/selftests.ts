/**
 * The selftests' half of the coverage run: the kernel's own iommufd selftests
 * (tools/testing/selftests/iommu: iommufd and iommufd_fail_nth, as `npm run kernel:selftests`
 * builds them) in one VM of the coverage kernel. The counters are reset after boot
 * (/sys/kernel/debug/gcov/reset), so what is counted is the tests' work only; at the end every
 * .gcda is printed on the console (gzip, base64) and read back here.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { KernelBuild } from '../kernel/build.ts';
import { baseEntries, buildInitramfs, INIT_PROLOGUE } from '../qemu/initramfs.ts';
import { ensureSelftests, parseSelftestOutput, SELFTESTS, type SelftestResult } from '../qemu/selftests.ts';
import { Vm } from '../qemu/vm.ts';
import { fromBuffer } from './gcda.ts';

/** 2 MiB huge pages for the *_hugepage variants, as run-selftests.ts gives them. */
const HUGEPAGES = 128;

function initScript(): string {
  return `${INIT_PROLOGUE}
dmesg -n 1
echo 1 > /sys/kernel/debug/gcov/reset
cd /selftests
for t in ${SELFTESTS.join(' ')}; do
  echo "vfio-mc-selftest-begin $t"
  ./$t
  echo "vfio-mc-selftest-end $t rc=$?"
done
cd /sys/kernel/debug/gcov
find . -name '*.gcda' | while read f; do
  echo "vfio-mc-gcda-begin $f"
  gzip -c "$f" | base64
  echo "vfio-mc-gcda-end"
done
echo vfio-mc-selftests-done
reboot -f
`;
}

/** The .gcda files the console carried: path under /sys/kernel/debug/gcov → words. */
export function parseGcdaDump(lines: readonly string[]): Map<string, Uint32Array> {
  const out = new Map<string, Uint32Array>();
  let path: string | undefined;
  let b64: string[] = [];
  for (const line of lines) {
    const begin = /^vfio-mc-gcda-begin \.\/(\S+)$/.exec(line);
    if (begin) {
      path = begin[1];
      b64 = [];
    } else if (line === 'vfio-mc-gcda-end' && path) {
      out.set(path, fromBuffer(gunzipSync(Buffer.from(b64.join(''), 'base64'))));
      path = undefined;
    } else if (path) b64.push(line.trim());
  }
  return out;
}

export interface SelftestRun {
  readonly results: SelftestResult[];
  /** Path under /sys/kernel/debug/gcov → the file's words at the end of the tests. */
  readonly gcda: Map<string, Uint32Array>;
  readonly seconds: number;
}

export async function runSelftestsForCoverage(
  build: KernelBuild,
  timeoutS = 3000,
  onConsole?: (line: string) => void,
): Promise<SelftestRun> {
  const bins = ensureSelftests(build);
  const initrd = buildInitramfs([
    ...baseEntries(initScript()),
    { kind: 'dir', path: 'selftests' },
    ...SELFTESTS.map((t) => ({
      kind: 'file' as const,
      path: `selftests/${t}`,
      data: readFileSync(bins[t]),
      mode: 0o755,
    })),
  ]);
  const started = Date.now();
  const vm = await Vm.start({
    kernel: build.bzImage,
    initrd,
    memoryMiB: 3072,
    append: [`hugepages=${HUGEPAGES}`],
    ...(onConsole && { onConsole }),
  });
  const timer = setTimeout(() => void vm.stop(), timeoutS * 1000);
  await vm.exited;
  clearTimeout(timer);
  await vm.stop();
  const lines = vm.log.lines;
  if (!lines.includes('vfio-mc-selftests-done'))
    throw new Error(`the selftests VM stopped before the end; last lines:\n${lines.slice(-20).join('\n')}`);
  return {
    results: parseSelftestOutput(lines),
    gcda: parseGcdaDump(lines),
    seconds: (Date.now() - started) / 1000,
  };
}
