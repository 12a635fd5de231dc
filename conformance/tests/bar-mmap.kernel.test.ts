// The bar-mmap ops on the VM's edu and nvme devices through vfio-pci, each with its errno
// asserted: VFIO_DEVICE_GET_INFO / GET_REGION_INFO / RESET, pread/pwrite of the config region
// (PCI_COMMAND, and PM_CTRL of nvme's power-management capability), and `load`, whose SIGBUS
// and ru_minflt are what the bar-mmap adapter observes of a mapping (a VM_PFNMAP VMA shows its
// PTE to neither pagemap nor mincore); and the replay comparing those with the model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findModel } from '../../explorer/registry.ts';
import type { Adapter } from '../adapters/adapter.ts';
import { EDU_ID } from '../adapters/bar-mmap.ts';
import { allowList, formatConformReport, planRun, runConformance } from '../conform.ts';
import { generatePaths } from '../paths.ts';
import { PM_PCI_DEVICE, RESETTABLE_PCI_DEVICE, TEST_PCI_DEVICE } from '../qemu/vm.ts';
import { type Actor, openTarget, outNum, type Target } from '../target.ts';
import { PAGE_SIZE, step } from './steps.ts';

let target: Target;

beforeAll(async () => {
  target = await openTarget({
    kind: 'qemu',
    allow: [
      '/dev/vfio/vfio',
      `pci:${TEST_PCI_DEVICE}`,
      `pci:${RESETTABLE_PCI_DEVICE}`,
      `pci:${PM_PCI_DEVICE}`,
    ],
  });
});

afterAll(async () => {
  await target?.close();
});

describe('a BAR0 mapping of edu against PCI_COMMAND memory off and on (7.3.4)', () => {
  it('faults the pfn in once, SIGBUSes while memory is off, faults again after it is on', async () => {
    const a = target.actor('bar');
    const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    const pci = await step(a, 'pci_group', { bdf: RESETTABLE_PCI_DEVICE }, '0');
    expect(pci.out.driver).toBe('vfio-pci');
    const group = outNum(await step(a, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
    await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const fd = outNum(
      await step(a, 'vfio_group_get_device_fd', { fd: group, name: RESETTABLE_PCI_DEVICE }, '0'),
      'device_fd',
    );
    const info = await step(a, 'vfio_device_get_info', { fd }, '0');
    // VFIO_DEVICE_FLAGS_PCI; VFIO_PCI_NUM_REGIONS (9) plus none of vfio-pci's own
    expect(outNum(info, 'flags') & 2).toBe(2);
    expect(outNum(info, 'num_regions')).toBe(9);
    const bar0 = await step(a, 'vfio_device_get_region_info', { fd, index: 0 }, '0');
    // VFIO_PCI_INDEX_TO_OFFSET(0) = 0; edu's BAR0 is 1 MiB, mmap-able (VFIO_REGION_INFO_FLAG_MMAP = 4)
    expect(outNum(bar0, 'offset')).toBe(0);
    expect(outNum(bar0, 'size')).toBe(1 << 20);
    expect(outNum(bar0, 'flags') & 4).toBe(4);
    const cfg = outNum(await step(a, 'vfio_device_get_region_info', { fd, index: 7 }, '0'), 'offset');
    expect(cfg).toBe(7 * 2 ** 40); // VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX)
    const cmd = outNum(await step(a, 'pread', { fd, offset: cfg + 4, size: 2 }, '0'), 'value');
    expect(cmd & 2).toBe(2); // the virtual COMMAND has MEMORY set after open
    await expect(a.call('pwrite', { fd, offset: cfg + 4, size: 3, value: 0 })).rejects.toThrow(
      /size must be 1, 2 or 4/,
    );

    const addr = outNum(
      await step(a, 'mmap', { fd, offset: 0, length: PAGE_SIZE, prot: 'READ|WRITE', flags: 'SHARED' }, '0'),
      'addr',
    );
    let l = await step(a, 'load', { addr }, '0');
    expect(l.out).toMatchObject({ sigbus: 0, value: EDU_ID, minflt: 1 }); // vfio_pci_mmap_huge_fault inserted it
    l = await step(a, 'load', { addr }, '0');
    expect(l.out).toMatchObject({ sigbus: 0, value: EDU_ID, minflt: 0 }); // served by the PTE

    expect((await step(a, 'pwrite', { fd, offset: cfg + 4, size: 2, value: cmd & ~2 }, '0')).ret).toBe(2);
    l = await step(a, 'load', { addr }, '0');
    expect(l.out).toMatchObject({ sigbus: 1, minflt: 0 }); // zapped; the fault is VM_FAULT_SIGBUS
    await step(a, 'pwrite', { fd, offset: cfg + 4, size: 2, value: cmd }, '0');
    l = await step(a, 'load', { addr }, '0');
    expect(l.out).toMatchObject({ sigbus: 0, value: EDU_ID, minflt: 1 }); // no prefault: faulted again
    await step(a, 'munmap', { addr, length: PAGE_SIZE }, '0');

    // Alone behind the root port, edu has a secondary bus reset (pci_parent_bus_reset); the
    // reset zaps the mapping, and COMMAND comes back as it was: the next load faults again.
    expect(outNum(info, 'reset')).toBe(1);
    const again = outNum(
      await step(a, 'mmap', { fd, offset: 0, length: PAGE_SIZE, prot: 'READ|WRITE', flags: 'SHARED' }, '0'),
      'addr',
    );
    expect((await step(a, 'load', { addr: again }, '0')).out).toMatchObject({ minflt: 1 });
    await step(a, 'vfio_device_reset', { fd }, '0');
    expect((await step(a, 'load', { addr: again }, '0')).out).toMatchObject({
      sigbus: 0,
      value: EDU_ID,
      minflt: 1,
    });
    await step(a, 'exit', { code: 0 }, '0');
  });

  it('the edu on the root bus has no reset method: no VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_RESET is EINVAL', async () => {
    const a = target.actor('rootbus');
    const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    const pci = await step(a, 'pci_group', { bdf: TEST_PCI_DEVICE }, '0');
    const group = outNum(await step(a, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
    await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const fd = outNum(
      await step(a, 'vfio_group_get_device_fd', { fd: group, name: TEST_PCI_DEVICE }, '0'),
      'device_fd',
    );
    expect(outNum(await step(a, 'vfio_device_get_info', { fd }, '0'), 'reset')).toBe(0);
    await step(a, 'vfio_device_reset', { fd }, 'EINVAL'); // vfio_pci_ioctl_reset: !vdev->reset_works
    await step(a, 'exit', { code: 0 }, '0');
  });
});

/** The device fd of `bdf` through a type1 container (the bar-mmap adapter's fixture, by hand). */
async function deviceFd(a: Actor, bdf: string): Promise<number> {
  const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
  const pci = await step(a, 'pci_group', { bdf }, '0');
  expect(pci.out.driver).toBe('vfio-pci');
  const group = outNum(await step(a, 'open', { path: String(pci.out.group_path) }, '0'), 'fd');
  await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
  await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
  return outNum(await step(a, 'vfio_group_get_device_fd', { fd: group, name: bdf }, '0'), 'device_fd');
}

describe('D3hot through PM_CTRL: the nvme behind the second root port (7.3.4)', () => {
  it('D3hot zaps the mapping (SIGBUS, no fault counted), D0 faults it in again, a reset from D3hot leaves D0', async () => {
    const a = target.actor('pm');
    const fd = await deviceFd(a, PM_PCI_DEVICE);
    expect(outNum(await step(a, 'vfio_device_get_info', { fd }, '0'), 'reset')).toBe(1);
    const cfg = outNum(await step(a, 'vfio_device_get_region_info', { fd, index: 7 }, '0'), 'offset');
    const read = async (at: number, size: number) =>
      outNum(await step(a, 'pread', { fd, offset: cfg + at, size }, '0'), 'value');
    // The capability list (vfio virtualises only its next pointers): PM (id 1) somewhere on it.
    let pm = 0;
    for (let pos = (await read(0x34, 1)) & 0xfc, ttl = 48; pos >= 0x40 && ttl > 0 && !pm; ttl--) {
      if ((await read(pos, 1)) === 1) pm = pos;
      else pos = (await read(pos + 1, 1)) & 0xfc;
    }
    expect(pm).toBeGreaterThan(0);
    const ctrl = await read(pm + 4, 2);
    expect(ctrl & 3).toBe(0); // D0 after open
    const cap = outNum(await step(a, 'pread', { fd, offset: 0, size: 4 }, '0'), 'value'); // BAR0: nvme CAP
    const addr = outNum(
      await step(a, 'mmap', { fd, offset: 0, length: PAGE_SIZE, prot: 'READ|WRITE', flags: 'SHARED' }, '0'),
      'addr',
    );
    expect((await step(a, 'load', { addr }, '0')).out).toMatchObject({ sigbus: 0, value: cap, minflt: 1 });
    // vfio_pm_config_write -> vfio_lock_and_set_power_state(D3hot): zap under memory_lock write
    expect((await step(a, 'pwrite', { fd, offset: cfg + pm + 4, size: 2, value: ctrl | 3 }, '0')).ret).toBe(
      2,
    );
    expect((await read(pm + 4, 2)) & 3).toBe(3);
    expect((await step(a, 'load', { addr }, '0')).out).toMatchObject({ sigbus: 1, minflt: 0 });
    await step(a, 'pwrite', { fd, offset: cfg + pm + 4, size: 2, value: ctrl }, '0');
    expect((await step(a, 'load', { addr }, '0')).out).toMatchObject({ sigbus: 0, value: cap, minflt: 1 });
    // vfio_pci_ioctl_reset: vfio_pci_set_power_state(D0) before the reset
    await step(a, 'pwrite', { fd, offset: cfg + pm + 4, size: 2, value: ctrl | 3 }, '0');
    await step(a, 'vfio_device_reset', { fd }, '0');
    expect((await read(pm + 4, 2)) & 3).toBe(0);
    expect((await step(a, 'load', { addr }, '0')).out).toMatchObject({ sigbus: 0, value: cap, minflt: 1 });
    await step(a, 'exit', { code: 0 }, '0');
  });
});

describe('the replay compares what the model predicts about the page tables', () => {
  it('a model that predicts no fault for a load without a PTE diverges at the first such load', async () => {
    const m = await findModel('bar-mmap');
    const run = planRun(m, 'current', generatePaths(m.variant('current')));
    expect(allowList(run)).toEqual(['/dev/vfio/vfio', `pci:${PM_PCI_DEVICE}`]);
    // The path with the fewest steps that faults a PTE in (a load, then another one served by it).
    const i = run.paths.findIndex((p) => p.steps.filter((s) => s.event.type === 'UserATouch').length >= 2);
    expect(i).toBeGreaterThanOrEqual(0);
    const wrong: Adapter = {
      ...run.adapter,
      map: (e, actor, variant, r) => {
        const mapping = run.adapter.map(e, actor, variant, r);
        if (mapping.kind !== 'call' || !mapping.facts) return mapping;
        const facts = mapping.facts;
        // A prefaulting design's claim: every load is served by a PTE.
        return {
          ...mapping,
          facts: { ...facts, predicted: (b, a, res) => ({ ...facts.predicted(b, a, res), minflt: 0 }) },
        };
      },
    };
    const one = { ...run, paths: [run.paths[i]], numbers: [run.numbers[i]] };
    const right = await runConformance(one, target);
    expect(right.paths[0].status, formatConformReport(right)).toBe('match');
    expect(right.facts).toMatchObject({ compared: right.facts.calls, agreed: right.facts.calls });
    const r = await runConformance({ ...one, adapter: wrong }, target);
    expect(r.paths[0].status, formatConformReport(r)).toBe('diverge');
    expect(r.paths[0].reason).toMatch(
      /Touch by user[AB]: 0 with \{"sigbus":0,"minflt":1\} observed, the model predicts 0 with \{"sigbus":0,"minflt":0\}/,
    );
  });
});
