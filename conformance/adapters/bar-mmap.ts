/**
 * machines/bar-mmap.ts (`current`, 7.3.4) on a real kernel: QEMU's edu alone
 * behind a PCIe root port (qemu/vm.ts RESETTABLE_PCI_DEVICE, so that
 * VFIO_DEVICE_RESET has a secondary bus reset) through vfio-pci and a type1
 * container. The model's two users are two processes holding the device fd,
 * each mapping one page of BAR0 (offset from VFIO_DEVICE_GET_REGION_INFO);
 * the guest is a third process writing PCI_COMMAND through the config region.
 *
 * What a touch observes: a PTE cannot be read for a VM_PFNMAP VMA (pagemap
 * and mincore skip it), so the shim's `load` reports SIGBUS or the value, and
 * this thread's ru_minflt delta. A served load must read edu's ID register,
 * 0x010000ed (hw/misc/edu.c): anything else is reported as a divergence
 * (a load that reached a BAR that does not decode reads all ones).
 *
 * Not replayable on this VM, with the reason in the report:
 * - GuestPowerWrite: edu has no PCI power-management capability, so there is
 *   no PM_CTRL to write (vfio_pm_config_write never runs);
 * - VmmReset if VFIO_DEVICE_GET_INFO has no VFIO_DEVICE_FLAGS_RESET (edu on
 *   the root bus, TEST_PCI_DEVICE: no FLR, no PM capability, no parent bridge,
 *   so pci_probe_reset_function() finds no method and vfio_pci_ioctl_reset()
 *   returns EINVAL).
 * The kernel steps between calls (lock windows, the zap, the Wait steps) are
 * internal: the tracker lets them interleave as the model allows.
 */
import { match, P } from 'ts-pattern';
import { BAR_MMAP_EVENT_TYPES } from '../../machines/bar-mmap.ts';
import { RESETTABLE_PCI_DEVICE as DEVICE } from '../qemu/vm.ts';
import {
  type Adapter,
  type Mapping,
  type Observed,
  PAGE,
  type PathRun,
  SetupError,
  Unreplayable,
} from './adapter.ts';

/** The model's event types: the match below is exhaustive over them, so a new one without a mapping fails to compile. */
export const BAR_MMAP_EVENTS = BAR_MMAP_EVENT_TYPES;
export type BarMmapEvent = (typeof BAR_MMAP_EVENTS)[number];

/** include/uapi/linux/vfio.h: VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX. */
const BAR0_INDEX = 0;
const CONFIG_INDEX = 7;
/** include/uapi/linux/pci_regs.h */
const PCI_COMMAND = 0x4;
const PCI_COMMAND_MEMORY = 0x2;
/** hw/misc/edu.c: the identification register at BAR0 offset 0 (version 1.0, 0xed). */
export const EDU_ID = 0x010000ed;

const OWNER = 'userA';
const FORKED = ['userB', 'guest', 'vmm'] as const;
const internal: Mapping = { kind: 'internal' };

type Ev = { readonly type: string; readonly memory?: boolean };

const userOf = (type: string) => (type.startsWith('UserA') ? 'userA' : 'userB');

/** What a load observed, as the model's touch result: '0', 'SIGBUS', or a divergence naming the value read. */
export function touchResult(o: Observed): Observed {
  if (o.status !== 'done' || o.errno !== '0') return o;
  if (Number(o.out.sigbus) === 1) return { ...o, errno: 'SIGBUS' };
  const v = Number(o.out.value);
  return v === EDU_ID ? o : { ...o, errno: `VALUE_0x${v.toString(16)}` };
}

export function mapBarMmapEvent(e: Ev): Mapping {
  return match(e.type as BarMmapEvent)
    .with(P.union('UserAMmap', 'UserBMmap'), (t) => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) => {
        const u = userOf(t);
        const o = await r.call(u, 'mmap', {
          fd: r.get('device'),
          offset: r.get('bar0'),
          length: PAGE,
          prot: 'READ|WRITE',
          flags: 'SHARED',
        });
        if (o.status === 'done' && o.errno === '0') r.sym.set(`addr:${u}`, Number(o.out.addr));
        return o;
      },
    }))
    .with(P.union('UserATouch', 'UserBTouch'), (t) => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) =>
        touchResult(await r.call(userOf(t), 'load', { addr: r.get(`addr:${userOf(t)}`) })),
    }))
    .with(P.union('UserAMunmap', 'UserBMunmap'), (t) => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: (r: PathRun) => r.call(userOf(t), 'munmap', { addr: r.get(`addr:${userOf(t)}`), length: PAGE }),
    }))
    .with('GuestCommandWrite', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      // vfio_basic_config_write: a 2-byte write of PCI_COMMAND through the config region.
      run: async (r: PathRun) => {
        const cmd = r.get('command');
        const value = e.memory ? cmd | PCI_COMMAND_MEMORY : cmd & ~PCI_COMMAND_MEMORY;
        const o = await r.call('guest', 'pwrite', {
          fd: r.get('device'),
          offset: r.get('config') + PCI_COMMAND,
          size: 2,
          value,
        });
        if (o.status === 'done' && o.errno === '0') r.sym.set('command', value);
        return o;
      },
    }))
    .with('GuestPowerWrite', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async () => {
        throw new Unreplayable(
          'edu (hw/misc/edu.c) has no PCI power-management capability: there is no PM_CTRL to write, so vfio_pm_config_write never runs',
        );
      },
    }))
    .with('VmmReset', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) => {
        if (r.get('resetWorks') !== 1) {
          throw new Unreplayable(
            `VFIO_DEVICE_GET_INFO of ${DEVICE} has no VFIO_DEVICE_FLAGS_RESET (no FLR, no PM capability, no bus reset), so vfio_pci_ioctl_reset() is EINVAL where the model assumes a reset`,
          );
        }
        return r.call('vmm', 'vfio_device_reset', { fd: r.get('device') });
      },
    }))
    .with(
      P.union(
        'UserAMmapHook',
        'UserAMmapLink',
        'UserAMmapComplete',
        'UserAFaultLock',
        'UserAFaultInsert',
        'UserAFaultLockVma',
        'UserAFaultLockMemory',
        'UserAFaultRemap',
        'UserAMunmapLock',
        'UserAMunmapUnlink',
        'UserAMunmapClose',
        'UserAWait',
        'UserAHalt',
        'UserBMmapHook',
        'UserBMmapLink',
        'UserBMmapComplete',
        'UserBFaultLock',
        'UserBFaultInsert',
        'UserBFaultLockVma',
        'UserBFaultLockMemory',
        'UserBFaultRemap',
        'UserBMunmapLock',
        'UserBMunmapUnlink',
        'UserBMunmapClose',
        'UserBWait',
        'UserBHalt',
      ),
      () => internal,
    )
    .with(
      P.union(
        'GuestLockMemory',
        'GuestZapLock',
        'GuestZapBars',
        'GuestZapListLock',
        'GuestZapMmLock',
        'GuestZapListZap',
        'GuestZapDownWrite',
        'GuestCommit',
        'GuestRemapScan',
        'GuestRemapLockMm',
        'GuestRemapLockMemory',
        'GuestRemapVmas',
        'GuestQuit',
        'GuestWait',
        'GuestHalt',
        'VmmLockMemory',
        'VmmZapLock',
        'VmmZapBars',
        'VmmZapListLock',
        'VmmZapMmLock',
        'VmmZapListZap',
        'VmmZapDownWrite',
        'VmmCommit',
        'VmmRemapScan',
        'VmmRemapLockMm',
        'VmmRemapLockMemory',
        'VmmRemapVmas',
        'VmmQuit',
        'VmmWait',
        'VmmHalt',
      ),
      // Kernel steps and lock waits; Quit is the thread making no more calls, Halt stops an actor after a BUG.
      () => internal,
    )
    .exhaustive();
}

export const barMmapAdapter: Adapter = {
  model: 'bar-mmap',
  variants: ['current'],
  eventTypes: BAR_MMAP_EVENTS,
  allow: () => ['/dev/vfio/vfio', `pci:${DEVICE}`],
  uuidsPerPath: 0,
  /**
   * The model's initial state: the device open through a type1 container with
   * memory decode on (virtual COMMAND memory set), no mapping; then the other
   * three actors forked, each holding the device fd, before anything is mapped.
   */
  async setup(r) {
    const container = r.num(await r.must(OWNER, 'open', { path: '/dev/vfio/vfio' }), 'fd');
    const pci = await r.must(OWNER, 'pci_group', { bdf: DEVICE });
    if (pci.out.driver !== 'vfio-pci') {
      throw new SetupError(
        `PCI device ${DEVICE} is bound to ${String(pci.out.driver ?? 'no driver')}, not vfio-pci`,
      );
    }
    const group = r.num(await r.must(OWNER, 'open', { path: String(pci.out.group_path) }), 'fd');
    await r.must(OWNER, 'vfio_group_set_container', { fd: group, container });
    await r.must(OWNER, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' });
    const device = r.num(
      await r.must(OWNER, 'vfio_group_get_device_fd', { fd: group, name: DEVICE }),
      'device_fd',
    );
    r.sym.set('device', device);
    r.sym.set('resetWorks', r.num(await r.must(OWNER, 'vfio_device_get_info', { fd: device }), 'reset'));
    const region = async (index: number) =>
      r.num(await r.must(OWNER, 'vfio_device_get_region_info', { fd: device, index }), 'offset');
    r.sym.set('bar0', await region(BAR0_INDEX));
    r.sym.set('config', await region(CONFIG_INDEX));
    let cmd = r.num(
      await r.must(OWNER, 'pread', { fd: device, offset: r.get('config') + PCI_COMMAND, size: 2 }),
      'value',
    );
    if (!(cmd & PCI_COMMAND_MEMORY)) {
      cmd |= PCI_COMMAND_MEMORY;
      await r.must(OWNER, 'pwrite', {
        fd: device,
        offset: r.get('config') + PCI_COMMAND,
        size: 2,
        value: cmd,
      });
    }
    r.sym.set('command', cmd);
    for (const a of FORKED) await r.must(OWNER, 'fork', { child: r.actorName(a) });
  },
  map: (e) => mapBarMmapEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
  },
};
