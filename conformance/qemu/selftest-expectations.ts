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
