/**
 * machines/container.ts on a real kernel: a VFIO type1v2 container holding two
 * mtty groups. Group A is the model's mdev group (its device fd is the model's
 * device fd); group B stands in for the model's vfio-pci group, which QEMU under
 * TCG cannot provide (no vIOMMU-backed vfio-pci device): B is an emulated group,
 * so MAP_DMA pins nothing and the accounting the model keeps for the domain is
 * not observable (it is not compared). The two model dmas are one page each of
 * a memfd mapped shared, at IOVA 1 MiB + i pages. mtty never calls
 * vfio_pin_pages(): the model's driver steps (MdevPinPages, MdevUnpinPages,
 * MdevPinWake) are absent on this target. The closes the model has after VmmExit
 * (exit_files() on the kernel) are made by a reaper forked just before the exit, holding
 * duplicates of the VMM's fds.
 */
import { match } from 'ts-pattern';
import { type Adapter, call, type Mapping, PAGE, type PathRun, Unreplayable } from './adapter.ts';

export const CONTAINER_EVENTS = [
  'VmmMapDma',
  'VmmUnmapDma',
  'VmmUnmapVaddr',
  'VmmMapVaddr',
  'VmmExec',
  'VmmExit',
  'VmmCloseDevice',
  'VmmCloseDeviceReturn',
  'VmmCloseContainer',
  'VmmDetachGroup',
  'VmmAttachGroup',
  'VmmOpenDevice',
  'VmmUnmapListLock',
  'VmmUnmapCallback',
  'VmmUnmapListUnlock',
  'VmmUnmapRelock',
  'MdevPinPages',
  'MdevUnpinPages',
  'MdevPinWake',
  'MdevDone',
  'ReleaseDone',
  'ReleaseNotifyClose',
  'ReleaseCloseDevice',
  'ReleaseUnregisterLock',
  'ReleaseUnregisterListLock',
  'ReleaseFinish',
  'HotplugOpenDevice',
  'HotplugRegisterListLock',
  'HotplugCloseDevice',
  'HotplugUnregisterListLock',
  'HotplugDone',
  'VmmHalt',
  'MdevHalt',
  'ReleaseHalt',
  'HotplugHalt',
] as const;
export type ContainerEvent = (typeof CONTAINER_EVENTS)[number];

const IOVA = 0x100000;
const DMAS = 2;
const VMM = 'vmm';
const internal: Mapping = { kind: 'internal' };
const noPin: Mapping = { kind: 'absent', why: 'mtty never calls vfio_pin_pages()/vfio_unpin_pages()' };

type Ev = { readonly type: string; readonly dma?: number; readonly range?: number | 'all' };

const rangeArgs = (range: number | 'all' | undefined) =>
  range === 'all' || range === undefined
    ? { iova: 0, size: 0, extra: 'ALL' }
    : { iova: IOVA + range * PAGE, size: PAGE, extra: '' };
const flags = (...f: string[]) => f.filter(Boolean).join('|');

/** The fds of the process that are open, for exec's keep list. */
const openFds = (r: PathRun) =>
  ['container', 'groupA', 'groupB', 'device', 'memfd']
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

export function mapContainerEvent(e: Ev): Mapping {
  const type = e.type as ContainerEvent;
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
      run: call(VMM, 'vfio_unmap_dma', (r) => {
        const a = rangeArgs(e.range);
        return { fd: r.get('container'), iova: a.iova, size: a.size, ...(a.extra && { flags: a.extra }) };
      }),
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
    .with('MdevPinPages', 'MdevUnpinPages', 'MdevPinWake', () => noPin)
    .with(
      'VmmCloseDeviceReturn',
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
    .with('HotplugOpenDevice', 'HotplugCloseDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async () => {
        throw new Unreplayable('the hotplug thread (variant current-hotplug) has no fixture in this adapter');
      },
    }))
    .exhaustive();
}

export const containerAdapter: Adapter = {
  model: 'container',
  variants: ['current'],
  eventTypes: CONTAINER_EVENTS,
  uuidsPerPath: 2,
  allow: (uuids) => ['/dev/vfio/vfio', ...uuids.map((u) => `mdev:${u}`)],
  /**
   * The model's initial state: container with type1v2, the mdev group (A) and the stand-in
   * for the vfio-pci group (B) attached, the mdev's device fd open, no dma mapped.
   */
  async setup(r) {
    const container = r.num(await r.must(VMM, 'open', { path: '/dev/vfio/vfio' }), 'fd');
    r.sym.set('container', container);
    for (const [i, g] of (['groupA', 'groupB'] as const).entries()) {
      const created = await r.must(VMM, 'mtty_create', { uuid: r.uuids[i], type: 'mtty-1' });
      const fd = r.num(await r.must(VMM, 'open', { path: String(created.out.group_path) }), 'fd');
      r.sym.set(g, fd);
      await r.must(VMM, 'vfio_group_set_container', { fd, container });
      if (i === 0) await r.must(VMM, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' });
    }
    const dev = await r.must(VMM, 'vfio_group_get_device_fd', { fd: r.get('groupA'), name: r.uuids[0] });
    r.sym.set('device', r.num(dev, 'device_fd'));
    const memfd = await r.must(VMM, 'memfd_create', { name: 'guest', size: DMAS * PAGE });
    r.sym.set('memfd', r.num(memfd, 'fd'));
    await remap(r);
  },
  /**
   * The stand-in for the vfio-pci group is an emulated group: with it attached and the
   * mdev group detached, the kernel has an emulated group where the model has only a
   * domain (T1:vfio_dma_do_unmap refuses VADDR with EBUSY while any emulated group is
   * attached), so VADDR unmaps from such states are out of this fixture's reach. Every
   * other call answers the same with an emulated group as with a domain (nothing pins:
   * mtty pins nothing), as long as no vaddr can become invalid, which needs that unmap.
   */
  unfit(c, e) {
    return e.type === 'VmmUnmapVaddr' && c.t1.domain && !c.t1.emulated.includes('mdev')
      ? 'an IOMMU domain without the mdev group (the target has no vfio-pci group: its stand-in is an emulated mtty group)'
      : null;
  },
  map: (e) => mapContainerEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
    for (const uuid of r.uuids) await r.target.actor('conform-admin').call('mtty_remove', { uuid });
  },
};
