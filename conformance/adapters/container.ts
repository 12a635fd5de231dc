/**
 * machines/container.ts on a real kernel: a VFIO type1v2 container holding a
 * pinning test mdev's group and an IOMMU-backed group. Group A is the model's mdev
 * group (its device fd is the model's device fd): an instance of the project's
 * pinning test mdev (conformance/mdev/vfio-mc-pin.c), a compliant driver like the
 * model's, whose vfio_pin_pages()/vfio_unpin_pages() the model's driver steps make
 * through its sysfs command node from the `mdev` actor, a process that holds no
 * device fd (so the VMM's close stays the last one). Group B is the model's vfio-pci group:
 * the VM's test PCI device (QEMU's edu behind the emulated VT-d, bound to
 * vfio-pci by /init because the allow-list names it, qemu/vm.ts
 * TEST_PCI_DEVICE), so the container has a real IOMMU domain: MAP_DMA pins and
 * charges locked_vm, and VADDR unmap is refused only while the mdev group is
 * attached, as in the model. VmLck of the VMM is compared with the model's
 * locked_vm after every call. The two model dmas are one page each of a memfd
 * mapped shared, at IOVA 1 MiB + i pages. With the hotplug thread (U6) a second
 * instance's group is attached too, and the `hotplug` actor, forked from the VMM
 * after the fixture, opens and closes its device. The closes the model has after
 * VmmExit (exit_files() on the kernel) are made by a reaper forked just before the
 * exit, holding duplicates of the VMM's fds.
 */
import { match } from 'ts-pattern';
import { TEST_PCI_DEVICE } from '../qemu/vm.ts';
import {
  type Adapter,
  call,
  type Mapping,
  type Observation,
  observeVm,
  PAGE,
  type PathRun,
  sameObservation,
  SetupError,
  Unreplayable,
} from './adapter.ts';
import { CONTAINER_EVENT_TYPES } from '../../machines/container.ts';

/** The model's event types: the match below is exhaustive over them, so a new one without a mapping fails to compile. */
export const CONTAINER_EVENTS = CONTAINER_EVENT_TYPES;
export type ContainerEvent = (typeof CONTAINER_EVENTS)[number];

const IOVA = 0x100000;
const DMAS = 2;
const VMM = 'vmm';
const internal: Mapping = { kind: 'internal' };
const MDEV = 'mdev';
const HOTPLUG = 'hotplug';
/**
 * The callback delay (ms) when the path leaves an unmap in flight: the kernel stays inside the
 * notification, device_list_lock held, until the path's next calls have started (U6).
 */
const IN_FLIGHT_CALLBACK_MS = 6000;

/** The driver's worker: one line to the pinning mdev's sysfs node (vfio-mc-pin.h). */
const worker = (r: PathRun, line: string) => r.call(MDEV, 'pin_worker', { uuid: r.uuids[0], line });
const iovaOf = (dma: number | undefined) => `0x${(IOVA + (dma ?? 0) * PAGE).toString(16)}`;

type Ev = {
  readonly type: string;
  readonly dma?: number;
  readonly range?: number | 'all';
  /** The second mdev (model parameter mdevs=2): no fixture here. */
  readonly dev?: number;
};

/** The fixture is the model at its default sizes: two dmas, one mdev (`--set dmas=2,mdevs=1`). */
function beyondFixture(e: Ev): string | undefined {
  if (e.dev !== undefined && e.dev !== 0) return 'the second mdev (mdevs=2) has no fixture in this adapter';
  const dma = e.dma ?? (typeof e.range === 'number' ? e.range : undefined);
  if (dma !== undefined && dma >= DMAS) return `dma${dma}: the fixture maps ${DMAS} dmas (dmas=${DMAS})`;
  return undefined;
}

const rangeArgs = (range: number | 'all' | undefined) =>
  range === 'all' || range === undefined
    ? { iova: 0, size: 0, extra: 'ALL' }
    : { iova: IOVA + range * PAGE, size: PAGE, extra: '' };
const flags = (...f: string[]) => f.filter(Boolean).join('|');

/** The fds of the process that are open, for exec's keep list. */
const openFds = (r: PathRun) =>
  ['container', 'groupA', 'groupB', 'group2', 'device', 'memfd']
    .map((k) => r.sym.get(k))
    .filter((x): x is number => x !== undefined);

const alive = (r: PathRun) => r.sym.get('exited') === undefined;
const REAPER = 'reaper';
/** Who closes the VMM's fds: the VMM, or after its exit the reaper holding their duplicates. */
const closer = (r: PathRun) => (alive(r) ? VMM : REAPER);

async function remap(r: PathRun) {
  const buf = await r.must(VMM, 'mmap', { length: DMAS * PAGE, flags: 'SHARED', fd: r.get('memfd') });
  r.sym.set('buf', r.num(buf, 'addr'));
}

/** Variants with the hotplug thread: current-hotplug (7.3.4), current-hotplug-fixed (the U6 patch). */
const HOTPLUG_VARIANTS = ['current-hotplug', 'current-hotplug-fixed'];

export function mapContainerEvent(e: Ev): Mapping {
  const type = e.type as ContainerEvent;
  const beyond = beyondFixture(e);
  if (beyond !== undefined) {
    return {
      kind: 'call',
      compare: 'errno',
      run: async () => {
        throw new Unreplayable(beyond);
      },
    };
  }
  return match(type)
    .with('VmmMapDma', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(VMM, 'vfio_map_dma', (r) => ({
        fd: r.get('container'),
        vaddr: r.get('buf') + (e.dma as number) * PAGE,
        iova: IOVA + (e.dma as number) * PAGE,
        size: PAGE,
        flags: 'READ|WRITE',
      })),
    }))
    .with('VmmUnmapDma', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) => {
        if (r.expectBlocked)
          await r.must(MDEV, 'pin_worker', { uuid: r.uuids[0], line: `delay ${IN_FLIGHT_CALLBACK_MS}` });
        const a = rangeArgs(e.range);
        return r.call(VMM, 'vfio_unmap_dma', {
          fd: r.get('container'),
          iova: a.iova,
          size: a.size,
          ...(a.extra && { flags: a.extra }),
        });
      },
    }))
    .with('VmmUnmapVaddr', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(VMM, 'vfio_unmap_dma', (r) => {
        const a = rangeArgs(e.range);
        return { fd: r.get('container'), iova: a.iova, size: a.size, flags: flags(a.extra, 'VADDR') };
      }),
    }))
    .with('VmmMapVaddr', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(VMM, 'vfio_map_dma', (r) => ({
        fd: r.get('container'),
        vaddr: r.get('buf') + (e.dma as number) * PAGE,
        iova: IOVA + (e.dma as number) * PAGE,
        size: PAGE,
        flags: 'VADDR',
      })),
    }))
    .with('VmmExec', () => ({
      kind: 'call' as const,
      compare: 'success' as const,
      // exec keeps the fds (as QEMU's cpr-exec does); the new image maps guest memory anew.
      run: async (r: PathRun) => {
        const o = await r.call(VMM, 'exec', { keep: openFds(r).join(',') });
        if (o.status === 'done' && o.errno === '0') await remap(r);
        return o;
      },
    }))
    .with('VmmExit', () => ({
      kind: 'call' as const,
      compare: 'success' as const,
      // A forked reaper keeps duplicates of the VMM's fds, so that the closes the model has
      // after the exit (exit_files() on the kernel) are real calls on the same open files:
      // the last fput then runs in the reaper's close(), with the VMM's mm gone.
      run: async (r: PathRun) => {
        const fork = await r.call(VMM, 'fork', { child: r.actorName(REAPER) });
        if (fork.status !== 'done' || fork.errno !== '0') return fork;
        const o = await r.call(VMM, 'exit', { code: 0 });
        if (o.status === 'done' && o.errno === '0') r.sym.set('exited', 1);
        return o;
      },
    }))
    .with('VmmCloseDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) => {
        const o = await r.call(closer(r), 'close', { fd: r.get('device') });
        if (o.errno === '0') r.sym.delete('device');
        return o;
      },
    }))
    .with('VmmCloseContainer', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      // close(container fd), then close(group B fd): the model's vfio-pci group goes with the container.
      run: async (r: PathRun) => {
        const o = await r.call(closer(r), 'close', { fd: r.get('container') });
        if (o.errno !== '0') return o;
        r.sym.delete('container');
        const b = await r.call(closer(r), 'close', { fd: r.get('groupB') });
        if (b.errno === '0') r.sym.delete('groupB');
        return b;
      },
    }))
    .with('VmmDetachGroup', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(VMM, 'vfio_group_unset_container', (r) => ({ fd: r.get('groupA') })),
    }))
    .with('VmmAttachGroup', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(VMM, 'vfio_group_set_container', (r) => ({
        fd: r.get('groupA'),
        container: r.get('container'),
      })),
    }))
    .with('VmmOpenDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(
        VMM,
        'vfio_group_get_device_fd',
        (r) => ({ fd: r.get('groupA'), name: r.uuids[0] }),
        (r, o) => r.sym.set('device', Number(o.out.device_fd)),
      ),
    }))
    .with('MdevPinPages', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: (r: PathRun) => worker(r, `pin ${iovaOf(e.dma)} 0x${PAGE.toString(16)}`),
    }))
    .with('MdevUnpinPages', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      // vfio_unpin_pages() returns nothing; on a closed device it WARNs (the model's 'WARN').
      run: async (r: PathRun) => {
        const o = await worker(r, `unpin ${iovaOf(e.dma)} 0x${PAGE.toString(16)}`);
        return o.status === 'done' && o.errno === '0' && o.splat ? { ...o, errno: 'WARN' } : o;
      },
    }))
    .with(
      'VmmCloseDeviceReturn',
      'MdevPinWake',
      'VmmUnmapListLock',
      'VmmUnmapCallback',
      'VmmUnmapListUnlock',
      'VmmUnmapRelock',
      'MdevDone',
      'ReleaseDone',
      'ReleaseNotifyClose',
      'ReleaseCloseDevice',
      'ReleaseUnregisterLock',
      'ReleaseUnregisterListLock',
      'ReleaseFinish',
      'HotplugRegisterListLock',
      'HotplugUnregisterListLock',
      'HotplugDone',
      'VmmHalt',
      'MdevHalt',
      'ReleaseHalt',
      'HotplugHalt',
      () => internal,
    )
    .with('HotplugOpenDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      // the second VMM thread's first open of the second device: register_device
      run: call(
        HOTPLUG,
        'vfio_group_get_device_fd',
        (r) => ({ fd: r.get('group2'), name: r.uuids[1] }),
        (r, o) => r.sym.set('device2', Number(o.out.device_fd)),
      ),
    }))
    .with('HotplugCloseDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: call(HOTPLUG, 'close', (r) => ({ fd: r.get('device2') })),
    }))
    .exhaustive();
}

/** The model's prediction for the VMM: VmPin 0 (type1 charges locked_vm only), VmLck = locked_vm of its mm. */
export function type1Vm(context: any, o: Observation): Observation {
  const out: Observation = {};
  for (const a of Object.keys(o)) {
    const mm = a === VMM && context.vmm.mm !== null ? context.mms[context.vmm.mm] : undefined;
    out[a] = { pinKb: 0, lckKb: (mm?.lockedVm ?? 0) * (PAGE / 1024) };
  }
  return out;
}

export const containerAdapter: Adapter = {
  model: 'container',
  variants: ['current', ...HOTPLUG_VARIANTS],
  eventTypes: CONTAINER_EVENTS,
  uuidsPerPath: 2,
  allow: (uuids) => ['/dev/vfio/vfio', ...uuids.map((u) => `mdev:${u}`), `pci:${TEST_PCI_DEVICE}`],
  /**
   * The model's initial state: container with type1v2, the mdev group (A) and the vfio-pci
   * group (B) attached, the mdev's device fd open, no dma mapped.
   */
  async setup(r, variant) {
    const container = r.num(await r.must(VMM, 'open', { path: '/dev/vfio/vfio' }), 'fd');
    r.sym.set('container', container);
    const created = await r.must(VMM, 'pin_create', { uuid: r.uuids[0] });
    const groupA = r.num(await r.must(VMM, 'open', { path: String(created.out.group_path) }), 'fd');
    r.sym.set('groupA', groupA);
    await r.must(VMM, 'vfio_group_set_container', { fd: groupA, container });
    await r.must(VMM, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' });
    const pci = await r.must(VMM, 'pci_group', { bdf: TEST_PCI_DEVICE });
    if (pci.out.driver !== 'vfio-pci') {
      throw new SetupError(
        `PCI device ${TEST_PCI_DEVICE} is bound to ${String(pci.out.driver ?? 'no driver')}, not vfio-pci`,
      );
    }
    const groupB = r.num(await r.must(VMM, 'open', { path: String(pci.out.group_path) }), 'fd');
    r.sym.set('groupB', groupB);
    // vfio_iommu_type1_attach_group(): the first IOMMU-backed group allocates the domain.
    await r.must(VMM, 'vfio_group_set_container', { fd: groupB, container });
    const dev = await r.must(VMM, 'vfio_group_get_device_fd', { fd: groupA, name: r.uuids[0] });
    r.sym.set('device', r.num(dev, 'device_fd'));
    const memfd = await r.must(VMM, 'memfd_create', { name: 'guest', size: DMAS * PAGE });
    r.sym.set('memfd', r.num(memfd, 'fd'));
    await remap(r);
    if (HOTPLUG_VARIANTS.includes(variant)) {
      // the second emulated device's group in the container; its device is not open yet
      const second = await r.must(VMM, 'pin_create', { uuid: r.uuids[1] });
      const group2 = r.num(await r.must(VMM, 'open', { path: String(second.out.group_path) }), 'fd');
      r.sym.set('group2', group2);
      await r.must(VMM, 'vfio_group_set_container', { fd: group2, container });
      // The model's hotplug is a thread of the VMM; here it is a forked process, which keeps
      // only the second group: the VMM's closes stay the last ones of its other files.
      await r.must(VMM, 'fork', { child: r.actorName(HOTPLUG) });
      for (const k of ['container', 'groupA', 'groupB', 'device', 'memfd'])
        await r.must(HOTPLUG, 'close', { fd: r.get(k) });
    }
  },
  observe: (r) => observeVm(r, [VMM]),
  predict: (c, o) => type1Vm(c, o),
  fits: (c, o) => sameObservation(type1Vm(c, o), o),
  map: (e) => mapContainerEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
    for (const uuid of r.uuids) await r.target.actor('conform-admin').call('pin_remove', { uuid });
  },
};
