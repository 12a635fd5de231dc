// VFIO type1 container scenarios with the mtty sample mdev as the (emulated-IOMMU) group and the
// VM's edu device behind the emulated VT-d, bound to vfio-pci, as the IOMMU-backed group; one a
// test, the errno asserted at every step (UAPI-FACTS §1.3-§1.6, §4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_PCI_DEVICE } from '../qemu/vm.ts';
import { type Actor, openTarget, outNum, type Target } from '../target.ts';
import { PAGE_SIZE, step, vm } from './steps.ts';

const UUIDS = {
  ext: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001',
  overlap: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1002',
  vaddr: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1003',
  bisect: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1004',
  handoff: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1005',
  u7: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1006',
};
const IOVA = 0x100000;

let target: Target;

beforeAll(async () => {
  target = await openTarget({
    kind: 'qemu',
    allow: ['/dev/vfio/vfio', ...Object.values(UUIDS).map((u) => `mdev:${u}`), `pci:${TEST_PCI_DEVICE}`],
  });
});

afterAll(async () => {
  await target?.close();
});

/** open /dev/vfio/vfio, create the mtty, open its group and put it in the container. */
async function containerWithMtty(actor: Actor, uuid: string) {
  const container = outNum(await step(actor, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
  const created = await step(actor, 'mtty_create', { uuid, type: 'mtty-2' }, '0');
  const groupPath = String(created.out.group_path);
  expect(groupPath).toMatch(/^\/dev\/vfio\/\d+$/);
  const group = outNum(await step(actor, 'open', { path: groupPath }, '0'), 'fd');
  await step(actor, 'vfio_group_set_container', { fd: group, container }, '0');
  return { container, group };
}

/** Device and group fds first (VGRP: the group release detaches the container), then the mdev. */
async function teardown(actor: Actor, uuid: string, fds: number[]) {
  for (const fd of fds) await step(actor, 'close', { fd }, '0');
  await step(actor, 'mtty_remove', { uuid }, '0');
}

describe('VFIO type1 with an mtty group (T1:vfio_iommu_type1_*)', () => {
  it('CHECK_EXTENSION(VFIO_UPDATE_VADDR) is 0 before SET_IOMMU and 0 once the mtty group is attached', async () => {
    const a = target.actor('ext');
    const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    // VCONT:vfio_container_ioctl_check_extension probes type1 with iommu == NULL
    expect(
      (await step(a, 'vfio_check_extension', { fd: container, ext: 'VFIO_UPDATE_VADDR' }, '0')).ret,
    ).toBe(0);
    expect(
      (await step(a, 'vfio_check_extension', { fd: container, ext: 'VFIO_TYPE1v2_IOMMU' }, '0')).ret,
    ).toBe(1);
    const created = await step(a, 'mtty_create', { uuid: UUIDS.ext, type: 'mtty-2' }, '0');
    const groupPath = String(created.out.group_path);
    const group = outNum(await step(a, 'open', { path: groupPath }, '0'), 'fd');
    await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    // vfio_iommu_type1_check_extension: iommu && !vfio_iommu_has_emulated(iommu)
    expect(
      (await step(a, 'vfio_check_extension', { fd: container, ext: 'VFIO_UPDATE_VADDR' }, '0')).ret,
    ).toBe(0);
    expect((await step(a, 'vfio_check_extension', { fd: container, ext: 'VFIO_UNMAP_ALL' }, '0')).ret).toBe(
      1,
    );
    await teardown(a, UUIDS.ext, [group, container]);
  });

  it('MAP_DMA overlapping an existing vfio_dma fails with EEXIST', async () => {
    const a = target.actor('overlap');
    const { container, group } = await containerWithMtty(a, UUIDS.overlap);
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const buf = outNum(
      await step(a, 'mmap', { length: 4 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
      'addr',
    );
    const map = (iova: number, size: number, errno: string) =>
      step(a, 'vfio_map_dma', { fd: container, vaddr: buf, iova, size, flags: 'READ|WRITE' }, errno);
    await map(IOVA, 2 * PAGE_SIZE, '0');
    await map(IOVA, 2 * PAGE_SIZE, 'EEXIST');
    await map(IOVA + PAGE_SIZE, 2 * PAGE_SIZE, 'EEXIST');
    await map(IOVA - PAGE_SIZE, 2 * PAGE_SIZE, 'EEXIST');
    await map(IOVA + 2 * PAGE_SIZE, PAGE_SIZE, '0');
    const all = await step(a, 'vfio_unmap_dma', { fd: container, flags: 'ALL' }, '0');
    expect(all.out.size).toBe(3 * PAGE_SIZE);
    await teardown(a, UUIDS.overlap, [group, container]);
  });

  it('UNMAP_DMA with VADDR while an mtty group is attached fails with EBUSY', async () => {
    const a = target.actor('vaddr');
    const { container, group } = await containerWithMtty(a, UUIDS.vaddr);
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const device = outNum(
      await step(a, 'vfio_group_get_device_fd', { fd: group, name: UUIDS.vaddr }, '0'),
      'device_fd',
    );
    const buf = outNum(await step(a, 'mmap', { length: PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'), 'addr');
    await step(
      a,
      'vfio_map_dma',
      { fd: container, vaddr: buf, iova: IOVA, size: PAGE_SIZE, flags: 'READ|WRITE' },
      '0',
    );
    // vfio_dma_do_unmap: "Cannot update vaddr if mdev is present" is checked first
    await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE, flags: 'VADDR' }, 'EBUSY');
    await step(a, 'vfio_unmap_dma', { fd: container, flags: 'ALL|VADDR' }, 'EBUSY');
    // the mapping is untouched: a plain unmap removes it
    const r = await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE }, '0');
    expect(r.out.size).toBe(PAGE_SIZE);
    await teardown(a, UUIDS.vaddr, [device, group, container]);
  });

  it('UNMAP_DMA that would bisect a vfio_dma fails with EINVAL (v2), one covering none succeeds with size 0', async () => {
    const a = target.actor('bisect');
    const { container, group } = await containerWithMtty(a, UUIDS.bisect);
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const buf = outNum(
      await step(a, 'mmap', { length: 2 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
      'addr',
    );
    await step(a, 'vfio_map_dma', { fd: container, vaddr: buf, iova: IOVA, size: 2 * PAGE_SIZE }, '0');
    await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE }, 'EINVAL');
    await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA + PAGE_SIZE, size: PAGE_SIZE }, 'EINVAL');
    const none = await step(
      a,
      'vfio_unmap_dma',
      { fd: container, iova: IOVA + 4 * PAGE_SIZE, size: PAGE_SIZE },
      '0',
    );
    expect(none.out.size).toBe(0);
    const whole = await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: 2 * PAGE_SIZE }, '0');
    expect(whole.out.size).toBe(2 * PAGE_SIZE);
    await teardown(a, UUIDS.bisect, [group, container]);
  });

  it('with the vfio-pci group (a real IOMMU domain): MAP_DMA charges VmLck, VADDR unmap 0 then EINVAL, attach EBUSY, VADDR map 0', async () => {
    const a = target.actor('handoff');
    const pci = await step(a, 'pci_group', { bdf: TEST_PCI_DEVICE }, '0');
    expect(pci.out.driver).toBe('vfio-pci');
    const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    const group = outNum(await step(a, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
    const status = await step(a, 'vfio_group_get_status', { fd: group }, '0');
    expect(status.out.viable).toBe(1);
    await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    // vfio_iommu_type1_check_extension: no emulated group, so VADDR updates are offered
    expect(
      (await step(a, 'vfio_check_extension', { fd: container, ext: 'VFIO_UPDATE_VADDR' }, '0')).ret,
    ).toBe(1);
    const buf = outNum(await step(a, 'mmap', { length: PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'), 'addr');
    await step(a, 'vfio_map_dma', { fd: container, vaddr: buf, iova: IOVA, size: PAGE_SIZE }, '0');
    // vfio_pin_map_dma -> vfio_pin_pages_remote: pinned now, charged to current->mm's locked_vm
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 4 });
    await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE, flags: 'VADDR' }, '0');
    // vfio_dma_do_unmap: a vaddr already invalid is EINVAL (and the call's own changes roll back)
    await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE, flags: 'VADDR' }, 'EINVAL');
    // vfio_iommu_type1_attach_group: "Attach could require pinning" while a vaddr is invalid
    const created = await step(a, 'mtty_create', { uuid: UUIDS.handoff, type: 'mtty-1' }, '0');
    const mtty = outNum(await step(a, 'open', { path: String(created.out.group_path) }, '0'), 'fd');
    await step(a, 'vfio_group_set_container', { fd: mtty, container }, 'EBUSY');
    await step(
      a,
      'vfio_map_dma',
      { fd: container, vaddr: buf, iova: IOVA, size: PAGE_SIZE, flags: 'VADDR' },
      '0',
    );
    await step(a, 'vfio_group_set_container', { fd: mtty, container }, '0');
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 4 });
    const r = await step(a, 'vfio_unmap_dma', { fd: container, iova: IOVA, size: PAGE_SIZE }, '0');
    expect(r.out.size).toBe(PAGE_SIZE);
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 0 });
    await step(a, 'close', { fd: mtty }, '0');
    await step(a, 'close', { fd: group }, '0');
    await step(a, 'close', { fd: container }, '0');
    await step(a, 'mtty_remove', { uuid: UUIDS.handoff }, '0');
  });

  it('U7 settled: the replay of a group attach pins from current->mm and charges dma->mm', async () => {
    // The mapper's container has only the mtty group (no domain): MAP_DMA pins nothing. A
    // child attaching the vfio-pci group makes vfio_iommu_replay() pin every dma through
    // vfio_pin_pages_remote(), which reads current->mm (the child's), and charge dma->mm.
    const a = target.actor('u7');
    const { container, group } = await containerWithMtty(a, UUIDS.u7);
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const buf = outNum(await step(a, 'mmap', { length: PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'), 'addr');
    await step(a, 'vfio_map_dma', { fd: container, vaddr: buf, iova: IOVA, size: PAGE_SIZE }, '0');
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 0 });
    // a child without the mapping at vaddr: the replay faults in the child's mm
    await step(a, 'fork', { child: 'u7-unmapped' }, '0');
    const b = target.actor('u7-unmapped');
    await step(b, 'munmap', { addr: buf, length: PAGE_SIZE }, '0');
    const pci = await step(b, 'pci_group', { bdf: TEST_PCI_DEVICE }, '0');
    const bGroup = outNum(await step(b, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
    await step(b, 'vfio_group_set_container', { fd: bGroup, container }, 'EFAULT');
    await step(b, 'exit', { code: 0 }, '0');
    // a child that still maps it (the same shared page): the attach pins, the mapper is charged
    await step(a, 'fork', { child: 'u7-mapped' }, '0');
    const c = target.actor('u7-mapped');
    const cGroup = outNum(await step(c, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
    await step(c, 'vfio_group_set_container', { fd: cGroup, container }, '0');
    expect(await vm(a, c.name)).toEqual({ pin: 0, lck: 0 });
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 4 });
    await step(c, 'exit', { code: 0 }, '0');
    // the child's exit closed its group fd: the domain went, its pins were uncharged from the mapper
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 0 });
    await teardown(a, UUIDS.u7, [group, container]);
  });
});
