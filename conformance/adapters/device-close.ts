/**
 * machines/device-close.ts on a real kernel: a VFIO type1v2 container holding only the
 * pinning test mdev's group (conformance/mdev/vfio-mc-pin.c), no IOMMU domain, as the model
 * has it: the driver's pins are what VmLck of the VMM counts (compared after every call). The
 * driver behaves as the variant's (compliant: unpins in its dma_unmap callback and in
 * close_device; late: queues the unpin; non-compliant: ignores both), set in the fixture with
 * its device-specific ioctl. Its worker's vfio_pin_pages()/vfio_unpin_pages() are the `mdev`
 * actor's lines to its sysfs command node (a process without the device fd, so the VMM's close
 * is the last one); the second UNMAP_DMA thread of two-unmappers is a forked process that
 * keeps only the container fd. Two dmas of one page each, as in the container adapter.
 *
 * Kernel 7.3.4 notifies only dmas with pinned pages ('if-pinned'); the designs that notify
 * every dma (seed 002's proposal) do not exist there. A late or ignoring driver makes
 * vfio_dma_do_unmap() hit BUG_ON(++retries > 10): the replay expects the oops where the model
 * predicts it ('kernel-bug', fresh VM for the next path).
 */
import { match } from 'ts-pattern';
import { DEVICE_CLOSE_EVENT_TYPES } from '../../machines/device-close.ts';
import {
  type Adapter,
  call,
  type Mapping,
  type Observation,
  observeVm,
  PAGE,
  type PathRun,
  sameObservation,
  Unreplayable,
} from './adapter.ts';

export const DEVICE_CLOSE_EVENTS = DEVICE_CLOSE_EVENT_TYPES;
export type DeviceCloseEvent = (typeof DEVICE_CLOSE_EVENTS)[number];

const IOVA = 0x100000;
const DMAS = 2;
const VMM = 'vmm';
const MDEV = 'mdev';
const UNMAPPER = 'unmapper';
const internal: Mapping = { kind: 'internal' };
/**
 * The driver's delay (ms) when the path leaves a call in flight for other calls to land in:
 * an unmap of a late driver, so that its worker can unpin between the retries (11
 * notifications take 11 s; the runner reports the call blocked after 3 s); a close, so that
 * the worker's pin lands before close_device acts.
 */
const IN_FLIGHT_LATE_CALLBACK_MS = 1000;
/** A compliant driver's callback (U6: the next call must come while device_list_lock is held). */
const IN_FLIGHT_CALLBACK_MS = 6000;
const IN_FLIGHT_CLOSE_MS = 6000;
const delay = (r: PathRun, ms: number) =>
  r.must(MDEV, 'pin_worker', { uuid: r.uuids[0], line: `delay ${ms}` });

/** The variants Linux 7.3 implements, with the driver mode of each. */
export const DRIVER_MODE: Readonly<Record<string, 'COMPLIANT' | 'LATE' | 'IGNORE'>> = {
  'notify-if-pinned-compliant': 'COMPLIANT',
  'notify-if-pinned-late': 'LATE',
  'notify-if-pinned-non-compliant': 'IGNORE',
  'two-unmappers': 'COMPLIANT',
  'two-unmappers-fixed': 'COMPLIANT',
};

type Ev = { readonly type: string; readonly dma?: number; readonly range?: number | 'all' };

const iovaOf = (dma: number | undefined) => `0x${(IOVA + (dma ?? 0) * PAGE).toString(16)}`;
const worker = (r: PathRun, line: string) => r.call(MDEV, 'pin_worker', { uuid: r.uuids[0], line });

const unmap = (actor: string, e: Ev): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run: async (r: PathRun) => {
    if (r.expectBlocked)
      await delay(r, r.sym.get('late') ? IN_FLIGHT_LATE_CALLBACK_MS : IN_FLIGHT_CALLBACK_MS);
    const all = e.range === 'all' || e.range === undefined;
    return r.call(actor, 'vfio_unmap_dma', {
      fd: r.get('container'),
      iova: all ? 0 : IOVA + (e.range as number) * PAGE,
      size: all ? 0 : PAGE,
      ...(all && { flags: 'ALL' }),
    });
  },
});

export function mapDeviceCloseEvent(e: Ev): Mapping {
  return match(e.type as DeviceCloseEvent)
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
    .with('VmmUnmapDma', () => unmap(VMM, e))
    .with('UnmapperUnmapDma', () => unmap(UNMAPPER, e))
    .with('VmmCloseDevice', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: async (r: PathRun) => {
        if (r.expectBlocked) await delay(r, IN_FLIGHT_CLOSE_MS);
        return r.call(VMM, 'close', { fd: r.get('device') });
      },
    }))
    .with('MdevPinPages', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      run: (r: PathRun) => worker(r, `pin ${iovaOf(e.dma)} 0x${PAGE.toString(16)}`),
    }))
    .with('MdevUnpinPages', () => ({
      kind: 'call' as const,
      compare: 'errno' as const,
      // vfio_unpin_pages() returns nothing; after the last close it WARNs (the model's 'WARN').
      run: async (r: PathRun) => {
        const o = await worker(r, `unpin ${iovaOf(e.dma)} 0x${PAGE.toString(16)}`);
        return o.status === 'done' && o.errno === '0' && o.splat ? { ...o, errno: 'WARN' } : o;
      },
    }))
    .with(
      'VmmUnmapListLock',
      'VmmUnmapCallback',
      'VmmUnmapListUnlock',
      'VmmUnmapRelock',
      'VmmCloseDeviceReturn',
      'UnmapperUnmapListLock',
      'UnmapperUnmapCallback',
      'UnmapperUnmapListUnlock',
      'UnmapperUnmapRelock',
      'ReleaseCloseDevice',
      'ReleaseUnregisterLock',
      'ReleaseUnregisterListLock',
      'ReleaseFinish',
      'VmmHalt',
      'MdevHalt',
      'ReleaseHalt',
      'UnmapperHalt',
      () => internal,
    )
    .exhaustive();
}

/** VmPin 0 (type1 charges locked_vm only), VmLck = the model's locked_vm of the VMM's mm. */
export function deviceCloseVm(context: any, o: Observation): Observation {
  const out: Observation = {};
  for (const a of Object.keys(o)) {
    const mm = a === VMM ? context.mms.mm0 : undefined;
    out[a] = { pinKb: 0, lckKb: (mm?.lockedVm ?? 0) * (PAGE / 1024) };
  }
  return out;
}

export const deviceCloseAdapter: Adapter = {
  model: 'device-close',
  variants: Object.keys(DRIVER_MODE),
  eventTypes: DEVICE_CLOSE_EVENTS,
  uuidsPerPath: 1,
  allow: (uuids) => ['/dev/vfio/vfio', ...uuids.map((u) => `mdev:${u}`)],
  /** The model's initial state: the mdev's group alone in a type1v2 container, its device open. */
  async setup(r, variant) {
    const mode = DRIVER_MODE[variant];
    if (!mode) throw new Unreplayable(`device-close/${variant}: not a design Linux 7.3 implements`);
    const container = r.num(await r.must(VMM, 'open', { path: '/dev/vfio/vfio' }), 'fd');
    r.sym.set('container', container);
    const created = await r.must(VMM, 'pin_create', { uuid: r.uuids[0] });
    const group = r.num(await r.must(VMM, 'open', { path: String(created.out.group_path) }), 'fd');
    r.sym.set('group', group);
    await r.must(VMM, 'vfio_group_set_container', { fd: group, container });
    await r.must(VMM, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' });
    const dev = await r.must(VMM, 'vfio_group_get_device_fd', { fd: group, name: r.uuids[0] });
    r.sym.set('device', r.num(dev, 'device_fd'));
    await r.must(VMM, 'pin_cmd', { fd: r.get('device'), op: 'MODE', data: mode });
    if (mode === 'LATE') r.sym.set('late', 1);
    const buf = await r.must(VMM, 'mmap', { length: DMAS * PAGE, flags: 'SHARED|ANONYMOUS' });
    r.sym.set('buf', r.num(buf, 'addr'));
    if (variant.startsWith('two-unmappers')) {
      // the second unmapping thread: a forked process that keeps only the container fd
      await r.must(VMM, 'fork', { child: r.actorName(UNMAPPER) });
      for (const k of ['group', 'device']) await r.must(UNMAPPER, 'close', { fd: r.get(k) });
    }
  },
  observe: (r) => observeVm(r, [VMM]),
  predict: (c, o) => deviceCloseVm(c, o),
  fits: (c, o) => sameObservation(deviceCloseVm(c, o), o),
  map: (e) => mapDeviceCloseEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
    for (const uuid of r.uuids) await r.target.actor('conform-admin').call('pin_remove', { uuid });
  },
};
