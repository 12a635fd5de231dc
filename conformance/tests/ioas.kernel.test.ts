// iommufd IOAS scenarios from tools/testing/selftests/iommu/iommufd.c, one a test, the errno
// asserted at every step (UAPI-FACTS §2.3, §2.6, §3.1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, openTarget, outNum, type Target } from '../target.ts';
import { PAGE_SIZE, step } from './steps.ts';

/**
 * Inside the mock domain's aperture [1 << 24, (1 << 31) - 1] (ST:mock_domain_alloc_paging),
 * with room below: below the aperture is reserved, where a fixed map fails with EINVAL.
 */
const IOVA = (1 << 24) + 16 * 4096;

let target: Target;

beforeAll(async () => {
  target = await openTarget({ kind: 'qemu' });
});

afterAll(async () => {
  await target?.close();
});

/** /dev/iommu, an IOAS with a mock domain attached (so maps pin), and a 4-page buffer. */
async function ioasWithDomain(actor: Actor) {
  const fd = outNum(await step(actor, 'open', { path: '/dev/iommu' }, '0'), 'fd');
  const ioas = outNum(await step(actor, 'ioas_alloc', { fd }, '0'), 'ioas_id');
  await step(actor, 'mock_domain', { fd, ioas }, '0');
  const buffer = outNum(
    await step(actor, 'mmap', { length: 4 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
    'addr',
  );
  return { fd, ioas, buffer };
}

describe('IOAS map/unmap (IOAS:iommufd_ioas_map, IOPT:iopt_unmap_iova_range)', () => {
  it('MAP over an existing area with FIXED_IOVA fails with EEXIST (IOPT:iopt_check_iova)', async () => {
    const a = target.actor('overlap');
    const { fd, ioas, buffer } = await ioasWithDomain(a);
    const fixed = 'FIXED_IOVA|READABLE|WRITEABLE';
    await step(
      a,
      'ioas_map',
      { fd, ioas, vaddr: buffer, length: 2 * PAGE_SIZE, iova: IOVA, flags: fixed },
      '0',
    );
    // the same range, a range overlapping the tail, and one overlapping the head
    await step(
      a,
      'ioas_map',
      { fd, ioas, vaddr: buffer, length: 2 * PAGE_SIZE, iova: IOVA, flags: fixed },
      'EEXIST',
    );
    await step(
      a,
      'ioas_map',
      { fd, ioas, vaddr: buffer, length: 2 * PAGE_SIZE, iova: IOVA + PAGE_SIZE, flags: fixed },
      'EEXIST',
    );
    await step(
      a,
      'ioas_map',
      { fd, ioas, vaddr: buffer, length: 2 * PAGE_SIZE, iova: IOVA - PAGE_SIZE, flags: fixed },
      'EEXIST',
    );
    // a disjoint range still maps
    await step(
      a,
      'ioas_map',
      { fd, ioas, vaddr: buffer, length: PAGE_SIZE, iova: IOVA + 4 * PAGE_SIZE, flags: fixed },
      '0',
    );
    await step(a, 'close', { fd }, '0');
  });

  it('UNMAP of part of an area fails with ENOENT and leaves it mapped (no split)', async () => {
    const a = target.actor('partial');
    const { fd, ioas, buffer } = await ioasWithDomain(a);
    const flags = 'FIXED_IOVA|READABLE|WRITEABLE';
    await step(a, 'ioas_map', { fd, ioas, vaddr: buffer, length: 4 * PAGE_SIZE, iova: IOVA, flags }, '0');
    // the head, the tail and the middle are each only part of the area
    await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA, length: PAGE_SIZE }, 'ENOENT');
    await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA + 3 * PAGE_SIZE, length: PAGE_SIZE }, 'ENOENT');
    await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA + PAGE_SIZE, length: 2 * PAGE_SIZE }, 'ENOENT');
    // still mapped: mapping over it is EEXIST, and the whole area unmaps
    await step(a, 'ioas_map', { fd, ioas, vaddr: buffer, length: PAGE_SIZE, iova: IOVA, flags }, 'EEXIST');
    const r = await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA, length: 4 * PAGE_SIZE }, '0');
    expect(r.out.length).toBe(4 * PAGE_SIZE);
    // nothing left to unmap
    await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA, length: 4 * PAGE_SIZE }, 'ENOENT');
    await step(a, 'close', { fd }, '0');
  });

  it('access pin, then UNMAP: the unmap callback drops the pin, DESTROY_ACCESS_PAGES gives ENOENT', async () => {
    // SELF access_pin_unmap: ST:iommufd_test_access_unmap unpins every overlapping item
    const a = target.actor('access');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    const buffer = outNum(
      await step(a, 'mmap', { length: 4 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
      'addr',
    );
    const flags = 'FIXED_IOVA|READABLE|WRITEABLE';
    await step(a, 'ioas_map', { fd, ioas, vaddr: buffer, length: 4 * PAGE_SIZE, iova: IOVA, flags }, '0');
    const access = outNum(
      await step(a, 'create_access', { fd, ioas, flags: 'NEEDS_PIN_PAGES' }, '0'),
      'access_fd',
    );
    const pin = await step(
      a,
      'access_pages',
      { fd, access_fd: access, iova: IOVA, length: PAGE_SIZE, uptr: buffer, flags: 'WRITE' },
      '0',
    );
    const id = outNum(pin, 'access_pages_id');
    // the page is pinned once by the access (MD_CHECK_REFS counts GUP_PIN_COUNTING_BIAS units)
    await step(a, 'md_check_refs', { fd, uptr: buffer, length: PAGE_SIZE, refs: 1 }, '0');
    // IOPT:iopt_unmap_iova_range sees num_accesses, calls iommufd_access_notify_unmap, retries
    await step(a, 'ioas_unmap', { fd, ioas, iova: IOVA, length: 4 * PAGE_SIZE }, '0');
    await step(a, 'md_check_refs', { fd, uptr: buffer, length: PAGE_SIZE, refs: 0 }, '0');
    await step(a, 'destroy_access_pages', { fd, access_fd: access, id }, 'ENOENT');
    await step(a, 'close', { fd: access }, '0');
    await step(a, 'close', { fd }, '0');
  });

  it('DMABUF_GET returns 0, not the dma-buf fd, on this tree; with the real fd MAP_FILE behaves as the selftest wants', async () => {
    // ST:iommufd_test_dmabuf_get() installs the fd with dma_buf_fd() and returns 0. This is why
    // the selftests dmabuf_simple/dmabuf_revoke fail here (they map fd 0); see README.
    const a = target.actor('dmabuf');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    expect((await step(a, 'fds', {}, '0')).out.fds).toEqual([fd]);
    const got = await step(a, 'dmabuf_get', { fd, length: 4 * PAGE_SIZE }, '0');
    expect(got.ret).toBe(0);
    const fds = (await step(a, 'fds', {}, '0')).out.fds as number[];
    expect(fds).toHaveLength(2);
    const dfd = fds.find((f) => f !== fd)!;
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    // SELF dmabuf_simple, with the fd the ioctl installed
    const size = 4 * PAGE_SIZE;
    await step(a, 'ioas_map_file', { fd, ioas, mfd: dfd, start: 0, length: 0 }, 'EINVAL');
    await step(a, 'ioas_map_file', { fd, ioas, mfd: dfd, start: size, length: size }, 'EINVAL');
    await step(a, 'ioas_map_file', { fd, ioas, mfd: dfd, start: 0, length: size + 1 }, 'EINVAL');
    await step(a, 'ioas_map_file', { fd, ioas, mfd: dfd, start: 0, length: size }, '0');
    await step(a, 'close', { fd: dfd }, '0');
    await step(a, 'close', { fd }, '0');
  });
});
