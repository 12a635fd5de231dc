// The shim's op table on the real kernel: the request checks every row gets from parse_args(),
// and the ops no adapter or other kernel test calls (VFIO_GET_API_VERSION, the cdev's
// BIND_IOMMUFD / ATTACH_IOMMUFD_PT, the selftest ACCESS_RW, memset), each with the errno
// asserted, so that a row bound to the wrong member fails here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget, outNum, type Target } from '../target.ts';
import { PAGE_SIZE, step } from './steps.ts';

const MDEV = 'a1b2c3d4-0000-4000-8000-0000000000b1';

let target: Target;

beforeAll(async () => {
  target = await openTarget({ kind: 'qemu', allow: ['/dev/iommu', '/dev/vfio/vfio', `mdev:${MDEV}`] });
});

afterAll(async () => {
  await target?.close();
});

describe('every request is read against its row before anything runs', () => {
  it('refuses an unknown or repeated argument, a missing one, a bad name and a value too wide', async () => {
    const a = target.actor('rows');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    await expect(a.call('ioas_alloc', { fd, ioas: 1 })).rejects.toThrow(
      /unknown argument ioas for ioas_alloc/,
    );
    // IOMMU_TEST_CMD's op is fixed by the row, not a request argument
    await expect(a.call('mock_domain', { fd, ioas: 1, op: 3 })).rejects.toThrow(
      /unknown argument op for mock_domain/,
    );
    await expect(a.call('ioas_unmap', { fd, ioas: 1, iova: 0 })).rejects.toThrow(/missing argument length/);
    await expect(
      a.call('vfio_map_dma', { fd, vaddr: 0, iova: 0, size: 1, flags: 'READ|EXEC' }),
    ).rejects.toThrow(/unknown name EXEC in flags/);
    // ioas_id is a __u32, IOMMU_OPTION's op a __u16
    await expect(a.call('ioas_map', { fd, ioas: 2 ** 32, vaddr: 0, length: 1 })).rejects.toThrow(
      /ioas=4294967296 does not fit ioas_id \(4 bytes\)/,
    );
    await expect(a.call('option', { fd, option_id: 'RLIMIT_MODE', op: 65536 })).rejects.toThrow(
      /op=65536 does not fit op \(2 bytes\)/,
    );
    // a negative value that fits the member as signed is passed on: the kernel answers
    await step(a, 'ioas_map', { fd, ioas: -1, vaddr: 0, length: PAGE_SIZE }, 'ENOENT');
    await step(a, 'close', { fd }, '0');
    await step(a, 'close', { fd }, 'EBADF');
  });
});

describe('ops no other test calls', () => {
  it('VFIO_GET_API_VERSION on the container is VFIO_API_VERSION (drivers/vfio/container.c:vfio_fops_unl_ioctl)', async () => {
    const a = target.actor('container');
    const fd = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    // include/uapi/linux/vfio.h: #define VFIO_API_VERSION 0
    expect((await step(a, 'vfio_get_api_version', { fd }, '0')).ret).toBe(0);
    expect((await step(a, 'vfio_check_extension', { fd, ext: 'VFIO_TYPE1v2_IOMMU' }, '0')).ret).toBe(1);
    await step(a, 'close', { fd }, '0');
  });

  it('an mtty cdev binds to iommufd once and attaches to an IOAS (drivers/vfio/device_cdev.c)', async () => {
    const a = target.actor('cdev');
    const created = await step(a, 'mtty_create', { uuid: MDEV, type: 'mtty-1' }, '0');
    const cdev = outNum(await step(a, 'open', { path: String(created.out.cdev_path) }, '0'), 'fd');
    const iommufd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    // vfio_df_ioctl_bind_iommufd: vfio_df_open() gives the device its id in the context
    const devid = outNum(await step(a, 'vfio_device_bind_iommufd', { fd: cdev, iommufd }, '0'), 'devid');
    expect(devid).toBeGreaterThan(0);
    // "one device cannot be bound twice": df->access_granted
    await step(a, 'vfio_device_bind_iommufd', { fd: cdev, iommufd }, 'EINVAL');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd: iommufd }, '0'), 'ioas_id');
    expect(ioas).not.toBe(devid);
    // vfio_df_ioctl_attach_pt -> vfio_iommufd_emulated_attach_ioas -> iommufd_access_attach:
    // iommufd_get_ioas() of an id that is no object is ENOENT
    await step(a, 'vfio_device_attach_iommufd_pt', { fd: cdev, pt_id: ioas + 100 }, 'ENOENT');
    const attached = await step(a, 'vfio_device_attach_iommufd_pt', { fd: cdev, pt_id: ioas }, '0');
    expect(outNum(attached, 'pt_id')).toBe(ioas);
    await step(a, 'close', { fd: cdev }, '0');
    await step(a, 'close', { fd: iommufd }, '0');
    await step(a, 'mtty_remove', { uuid: MDEV }, '0');
  });

  it('ACCESS_RW reads and writes a mapped area (drivers/iommu/iommufd/selftest.c:iommufd_test_access_rw)', async () => {
    const a = target.actor('rw');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    const area = outNum(
      await step(a, 'mmap', { length: 2 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
      'addr',
    );
    const buf = outNum(await step(a, 'mmap', { length: PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'), 'addr');
    await step(a, 'memset', { addr: area, length: 2 * PAGE_SIZE, byte: 0x5a }, '0');
    const iova = outNum(
      await step(a, 'ioas_map', { fd, ioas, vaddr: area, length: 2 * PAGE_SIZE }, '0'),
      'iova',
    );
    const access_fd = outNum(await step(a, 'create_access', { fd, ioas }, '0'), 'access_fd');
    const rw = { fd, access_fd, length: PAGE_SIZE };
    await step(a, 'access_rw', { ...rw, iova, uptr: buf }, '0');
    await step(a, 'access_rw', { ...rw, iova: iova + PAGE_SIZE, uptr: buf, flags: 'WRITE' }, '0');
    // iommufd_access_rw: past the area the contiguous walk is not done
    await step(a, 'access_rw', { ...rw, iova: iova + 2 * PAGE_SIZE, uptr: buf }, 'ENOENT');
    await step(a, 'access_rw', { ...rw, length: 0, iova, uptr: buf }, 'EINVAL');
    // WRITE copies from the user buffer first: copy_from_user(NULL)
    await step(a, 'access_rw', { ...rw, iova, uptr: 0, flags: 'WRITE' }, 'EFAULT');
    // iommufd_access_get: an fd that is not a selftest access
    await step(a, 'access_rw', { ...rw, access_fd: fd, iova, uptr: buf }, 'EBADFD');
    await step(a, 'close', { fd: access_fd }, '0');
    await step(a, 'close', { fd }, '0');
  });
});
