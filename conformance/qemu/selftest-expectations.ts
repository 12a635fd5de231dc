// Selftests known to fail on this target, each with the reason (conformance/README.md has
// the details). A failure not listed here fails `npm run kernel:selftests`; a listed test
// that passes is reported so the entry can be dropped.

/**
 * Debian 7.3.4's drivers/iommu/iommufd/selftest.c:iommufd_test_dmabuf_get() installs the
 * dma-buf fd with dma_buf_fd() but then returns 0, not the fd, so the selftest's
 * _test_cmd_get_dmabuf() takes fd 0 (the console) for the dma-buf. IOMMU_IOAS_MAP_FILE on
 * fd 0 is then a plain file map (dma_buf_get() fails, IOPT:iopt_map_file_pages falls back to
 * fget()): it succeeds lazily without a domain where the test wants EINVAL, and fails in
 * memfd_pin_folios() with a mock domain where the test wants success. A kernel bug in the
 * test mock, not a config gap; no Kconfig option changes it.
 */
const DMABUF_GET_RETURNS_ZERO =
  'kernel bug in this tree: selftest.c iommufd_test_dmabuf_get() returns 0 instead of the dma-buf fd, so the test maps fd 0';

export const EXPECTED_FAILURES: Record<string, string> = Object.fromEntries(
  ['no_domain', 'mock_domain', 'two_mock_domain', 'mock_domain_limit'].flatMap((variant) =>
    ['dmabuf_simple', 'dmabuf_revoke'].map((test) => [
      `iommufd_ioas.${variant}.${test}`,
      DMABUF_GET_RETURNS_ZERO,
    ]),
  ),
);

/**
 * The regression tests of the findings (conformance/kselftest/, spec/findings/): each fails on
 * 7.3.4 as released and must pass on a kernel built with its patch (kernel:build --patch).
 */
export interface FindingTest {
  readonly finding: string;
  /** File name of the patch in conformance/kernel/patches/ that fixes it. */
  readonly patch: string;
}

const F1 = { finding: 'F1', patch: '0001-iommufd-CHANGE_PROCESS-after-exec-must-not-fail-half-way.patch' };
const F2 = {
  finding: 'F2',
  patch: '0002-iommufd-CHANGE_PROCESS-must-move-pinned_vm-of-NONE-accounted-pages.patch',
};
const U6 = {
  finding: 'U6',
  patch: '0003-vfio-type1-take-device_list_lock-before-iommu-lock-everywhere.patch',
};

export const FINDING_TESTS: Readonly<Record<string, FindingTest>> = {
  'vfio_mc_exec_handoff.change_process_after_exec': F1,
  'vfio_mc_ioas.none_pages_change_process': F2,
  'global.notify_unpin_lockdep': U6,
  'global.unmap_notify_vs_open_no_deadlock': U6,
};

/**
 * What a test's failure means on a kernel carrying `patches` (file names): the reason when the
 * failure is expected, undefined when it is not (a finding test whose patch is applied must pass).
 */
export function expectedFailure(test: string, patches: readonly string[]): string | undefined {
  const f = FINDING_TESTS[test];
  if (f) return patches.includes(f.patch) ? undefined : `${f.finding}, fixed by ${f.patch} (not applied)`;
  return EXPECTED_FAILURES[test];
}
