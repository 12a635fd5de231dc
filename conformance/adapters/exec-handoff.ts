/**
 * machines/exec-handoff.ts on a real kernel, for the designs that exist in 7.3:
 * iommufd's IOMMU_IOAS_CHANGE_PROCESS (with and without a holder child, USER or
 * MM accounting). The fixture is the model's initial state: /dev/iommu,
 * CAP_IPC_LOCK dropped, RLIMIT_MEMLOCK of 4 pages, IOAS 1 with a mock domain
 * and two one-page MAP_FILE areas of a memfd (pinned by the mock domain). The
 * seed proposals that never landed (CHANGE_MM, VFIO_CHANGE_DMA_OWNER) have no
 * uAPI to call; type1 VADDR needs a vfio-pci group for the handoff to matter
 * and is replayed by the container adapter instead.
 */
import { match } from 'ts-pattern';
import { DESIGNS, RLIMIT } from '../../machines/exec-handoff.ts';
import {
  type Adapter,
  call,
  iommufdVm,
  type Mapping,
  observeVm,
  PAGE,
  type PathRun,
  sameObservation,
  Unreplayable,
} from './adapter.ts';
import { HANDOFF_EVENT_TYPES } from '../../machines/exec-handoff.ts';

/** The model's event types: the match below is exhaustive over them, so a new one without a mapping fails to compile. */
export const HANDOFF_EVENTS = HANDOFF_EVENT_TYPES;
export type HandoffEvent = (typeof HANDOFF_EVENTS)[number];

const NMAPS = 2;
// Inside the mock domain's aperture (selftest.c MOCK_APERTURE_START = 1 << 24).
const IOVA = 0x1000000;

type Ev = { readonly type: string; readonly rlimit?: 'ok' | 'low' };

const notInKernel = (what: string): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run: async () => {
    throw new Unreplayable(`${what} has no uAPI in Linux 7.3`);
  },
});

export function mapHandoffEvent(e: Ev): Mapping {
  return (
    match(e.type as HandoffEvent)
      .with('VmmFork', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        run: (r: PathRun) => r.call('vmm', 'fork', { child: r.actorName('holder') }),
      }))
      .with('VmmExec', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        // The image keeps the iommufd and the memfd; root's exec gives CAP_IPC_LOCK back, so drop it
        // again; the image's RLIMIT_MEMLOCK is the one the event chooses.
        run: async (r: PathRun) => {
          const o = await r.call('vmm', 'exec', { keep: `${r.get('fd')},${r.get('memfd')}` });
          if (o.status !== 'done' || o.errno !== '0') return o;
          await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
          await r.must('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: RLIMIT[e.rlimit ?? 'ok'] * PAGE });
          return o;
        },
      }))
      .with('ImageMmap', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        run: call('vmm', 'mmap', (r) => ({ length: NMAPS * PAGE, flags: 'SHARED', fd: r.get('memfd') })),
      }))
      .with('HolderIoasChangeProcess', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call('holder', 'ioas_change_process', (r) => ({ fd: r.get('fd') })),
      }))
      .with('ImageIoasChangeProcess', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call('vmm', 'ioas_change_process', (r) => ({ fd: r.get('fd') })),
      }))
      .with('HolderExit', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        run: call('holder', 'exit', () => ({ code: 0 })),
      }))
      // A killed holder's mm is torn down as on exit (exit_mm); the shim's exit stands for the SIGKILL.
      .with('HolderKilled', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        run: call('holder', 'exit', () => ({ code: 137 })),
      }))
      .with('ImageSetrlimit', () => ({
        kind: 'call' as const,
        compare: 'success' as const,
        run: call('vmm', 'setrlimit', () => ({ resource: 'MEMLOCK', cur: RLIMIT.ok * PAGE })),
      }))
      .with(
        'VmmExecFails',
        'VmmRollbackVaddr',
        'VmmPreSaveChangeProcess',
        'VmmExit',
        'VmmResume',
        'ImageProbeChangeProcess',
        'ImagePostLoadChangeProcess',
        'ImageExit',
        'ImageAbandon',
        'ImageUnmap',
        () => ({
          kind: 'call' as const,
          compare: 'errno' as const,
          run: async () => {
            throw new Unreplayable(
              "QEMU's cpr flows have no fixture in this adapter yet (they wait for the shim's op table)",
            );
          },
        }),
      )
      .with('VmmInvalidateVaddr', 'ImageMapVaddr', 'ImageStageVaddr', 'HolderStageVaddr', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: async () => {
          throw new Unreplayable(
            'the type1 VADDR design has no fixture in this adapter (the container adapter replays VADDR with the vfio-pci group)',
          );
        },
      }))
      .with('HolderChangeMm', 'ImageChangeMm', () => notInKernel("seed 000's CHANGE_MM"))
      .with(
        'HolderChangeDmaOwner',
        'ImageChangeDmaOwner',
        'HolderChangeDmaOwnerArray',
        'ImageChangeDmaOwnerArray',
        () => notInKernel("seed 001's VFIO_CHANGE_DMA_OWNER"),
      )
      .exhaustive()
  );
}

const SUPPORTED = (Object.keys(DESIGNS) as (keyof typeof DESIGNS)[]).filter(
  (v) => DESIGNS[v].protocol === 'changeProcess' && !('impl' in DESIGNS[v] && DESIGNS[v].impl === 'draft'),
);

export const handoffAdapter: Adapter = {
  model: 'exec-handoff',
  variants: SUPPORTED,
  eventTypes: HANDOFF_EVENTS,
  uuidsPerPath: 0,
  allow: () => ['/dev/iommu'],
  async setup(r, variant) {
    if (!(SUPPORTED as string[]).includes(variant))
      throw new Unreplayable(`exec-handoff/${variant} is not a design Linux 7.3 implements`);
    const d = DESIGNS[variant as keyof typeof DESIGNS] as { ctxMode?: 'user' | 'mm' };
    const fd = r.num(await r.must('vmm', 'open', { path: '/dev/iommu' }), 'fd');
    r.sym.set('fd', fd);
    await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
    if (d.ctxMode === 'mm')
      await r.must('vmm', 'option', { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: 1 });
    await r.must('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: RLIMIT.ok * PAGE });
    const ioas = r.num(await r.must('vmm', 'ioas_alloc', { fd }), 'ioas_id');
    await r.must('vmm', 'mock_domain', { fd, ioas });
    const memfd = r.num(await r.must('vmm', 'memfd_create', { name: 'guest', size: NMAPS * PAGE }), 'fd');
    r.sym.set('memfd', memfd);
    for (let slot = 0; slot < NMAPS; slot++) {
      await r.must('vmm', 'ioas_map_file', {
        fd,
        ioas,
        mfd: memfd,
        start: slot * PAGE,
        length: PAGE,
        iova: IOVA + slot * PAGE,
        flags: 'FIXED_IOVA|READABLE|WRITEABLE',
      });
    }
  },
  // VmPin/VmLck of each process after every call: the model's mms pinned_vm and locked_vm.
  observe: (r) => observeVm(r, ['vmm', 'holder']),
  predict: (c, o) => iommufdVm(c, o),
  fits: (c, o) => sameObservation(iommufdVm(c, o), o),
  map: (e) => mapHandoffEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
  },
};
