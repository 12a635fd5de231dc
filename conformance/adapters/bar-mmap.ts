/**
 * machines/bar-mmap.ts (`current`, 7.3.4) on a real kernel: QEMU's nvme alone behind a PCIe
 * root port (qemu/vm.ts PM_PCI_DEVICE) through vfio-pci and a type1 container. It is there for
 * its PCI power-management capability, which edu lacks: the model's D3hot and D0 config writes
 * reach VCFG:vfio_pm_config_write. Alone on the port's bus it has a reset method, so
 * VFIO_DEVICE_RESET works. The model's two users are two processes holding the device fd, each
 * mapping the first page of BAR0 (offset from VFIO_DEVICE_GET_REGION_INFO; the MSI-X table sits
 * above it); the guest is a third process writing PCI_COMMAND and PM_CTRL through the config
 * region.
 *
 * What a touch observes: a PTE cannot be read for a VM_PFNMAP VMA (pagemap and mincore skip it),
 * so the shim's `load` reports SIGBUS or the value, and this thread's ru_minflt delta. A served
 * load must read what BAR0 offset 0 read through the device fd at setup (nvme's CAP register):
 * anything else is reported as a divergence (a load that reached a BAR that does not decode
 * reads all ones). SIGBUS and the fault count are compared with the model's prediction
 * (machines/bar-mmap.ts loadFacts): a load with a PTE in the model takes no fault (minflt 0), a
 * load without one faults and counts it when it completes (minflt 1), or gets SIGBUS (minflt 0).
 *
 * Not replayable on this VM, with the reason in the report:
 * - GuestPowerWrite if the device shows no PM capability in its config space;
 * - VmmReset if VFIO_DEVICE_GET_INFO has no VFIO_DEVICE_FLAGS_RESET (vfio_pci_ioctl_reset()
 *   is EINVAL where the model assumes a reset).
 * The kernel steps between calls (lock windows, the zap, the Wait steps) are internal: the
 * tracker lets them interleave as the model allows.
 */
import { match, P } from 'ts-pattern';
import { BAR_MMAP_EVENT_TYPES, loadFacts } from '../../machines/bar-mmap.ts';
import { PM_PCI_DEVICE as DEVICE } from '../qemu/vm.ts';
import {
  type Adapter,
  type CallFacts,
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
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_PM = 0x01;
const PCI_PM_CTRL = 0x4;
const PCI_PM_CTRL_STATE_MASK = 0x3;
const PCI_D3HOT = 0x3;
/** drivers/pci/pci.c PCI_FIND_CAP_TTL: a capability walk ends after this many entries. */
const PCI_FIND_CAP_TTL = 48;
/** hw/misc/edu.c: the identification register at BAR0 offset 0 (version 1.0, 0xed). */
export const EDU_ID = 0x010000ed;

const OWNER = 'userA';
const FORKED = ['userB', 'guest', 'vmm'] as const;
const internal: Mapping = { kind: 'internal' };

type Ev = { readonly type: string; readonly memory?: boolean; readonly d3?: boolean };

const userOf = (type: string) => (type.startsWith('UserA') ? 'userA' : 'userB');

/**
 * What a load observed, as the model's touch result: '0', 'SIGBUS', or a divergence naming the
 * value read when it is not `expected` (what BAR0 offset 0 read through the device fd).
 */
export function touchResult(o: Observed, expected: number): Observed {
  if (o.status !== 'done' || o.errno !== '0') return o;
  if (Number(o.out.sigbus) === 1) return { ...o, errno: 'SIGBUS' };
  const v = Number(o.out.value);
  return v === expected ? o : { ...o, errno: `VALUE_0x${v.toString(16)}` };
}

/** A load's facts: SIGBUS or not, and the thread's ru_minflt delta, against the model's prediction. */
export const LOAD_FACTS: CallFacts = {
  observed: (o) => ({ sigbus: Number(o.out.sigbus), minflt: Number(o.out.minflt) }),
  predicted: (before, actor, result) => loadFacts(before, actor as 'userA' | 'userB', result),
};

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
      facts: LOAD_FACTS,
      run: async (r: PathRun) =>
        touchResult(await r.call(userOf(t), 'load', { addr: r.get(`addr:${userOf(t)}`) }), r.get('barValue')),
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
      // vfio_pm_config_write: a 2-byte write of PM_CTRL, the state bits D3hot (3) or D0 (0).
      run: async (r: PathRun) => {
        const pm = r.get('pm');
        if (pm === 0) {
          throw new Unreplayable(
            `${DEVICE} shows no PCI power-management capability in its config space: there is no PM_CTRL to write, so vfio_pm_config_write never runs`,
          );
        }
        const ctrl = r.get('pmCtrl') & ~PCI_PM_CTRL_STATE_MASK;
        const value = e.d3 ? ctrl | PCI_D3HOT : ctrl;
        const o = await r.call('guest', 'pwrite', {
          fd: r.get('device'),
          offset: r.get('config') + pm + PCI_PM_CTRL,
          size: 2,
          value,
        });
        if (o.status === 'done' && o.errno === '0') r.sym.set('pmCtrl', value);
        return o;
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
    // The value a load of BAR0 offset 0 must read while the BAR decodes.
    r.sym.set(
      'barValue',
      r.num(await r.must(OWNER, 'pread', { fd: device, offset: r.get('bar0'), size: 4 }), 'value'),
    );
    // The PM capability (drivers/pci/pci.c:__pci_find_next_cap_ttl): 0 when there is none.
    const config = async (at: number, size: number) =>
      r.num(await r.must(OWNER, 'pread', { fd: device, offset: r.get('config') + at, size }), 'value');
    let pm = 0;
    let pos = (await config(PCI_CAPABILITY_LIST, 1)) & 0xfc;
    for (let ttl = PCI_FIND_CAP_TTL; pos >= 0x40 && ttl > 0 && pm === 0; ttl--) {
      if (((await config(pos, 1)) & 0xff) === PCI_CAP_ID_PM) pm = pos;
      else pos = (await config(pos + 1, 1)) & 0xfc;
    }
    r.sym.set('pm', pm);
    if (pm !== 0) {
      // The model starts in D0: a device left in D3hot is not its initial state.
      const ctrl = await config(pm + PCI_PM_CTRL, 2);
      if ((ctrl & PCI_PM_CTRL_STATE_MASK) !== 0) {
        throw new SetupError(
          `${DEVICE} is in D${ctrl & PCI_PM_CTRL_STATE_MASK} after open, the model starts in D0`,
        );
      }
      r.sym.set('pmCtrl', ctrl);
    }
    for (const a of FORKED) await r.must(OWNER, 'fork', { child: r.actorName(a) });
  },
  map: (e) => mapBarMmapEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
  },
};
