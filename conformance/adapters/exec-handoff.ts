/**
 * machines/exec-handoff.ts on a real kernel, for the designs that exist in 7.3:
 * iommufd's IOMMU_IOAS_CHANGE_PROCESS (with and without a holder child, USER or
 * MM accounting) and QEMU's cpr-exec and cpr-transfer flows on the iommufd
 * back end (machines/handoff/qemu.ts). The fixture is the model's initial
 * state: /dev/iommu, CAP_IPC_LOCK dropped (kept for a QEMU that runs as root:
 * NONE pages), RLIMIT_MEMLOCK as the design says, IOAS 1 with a mock domain
 * and two one-page MAP_FILE areas of a memfd (pinned by the mock domain); for
 * cpr-transfer also the second QEMU, a fork made before the path starts (a
 * fork's mm starts with VmPin and VmLck 0, as the model's second mm does). The
 * seed proposals that never landed (CHANGE_MM, VFIO_CHANGE_DMA_OWNER) have no
 * uAPI to call; type1 VADDR (the vaddr design, QEMU's legacy container) needs
 * a vfio-pci group for the handoff to matter and is replayed by the container
 * adapter instead.
 */
import { match } from 'ts-pattern';
import { DESIGNS, type HandoffDesign, RLIMIT } from '../../machines/exec-handoff.ts';
import {
  type Adapter,
  type Mapping,
  type Observed,
  iommufdVm,
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
type Variant = keyof typeof DESIGNS;

const design = (variant: string): HandoffDesign => DESIGNS[variant as Variant];
const transfer = (d: HandoffDesign) => d.qemu?.mode === 'cpr-transfer';
/** The shim process that makes the image's calls: the exec'd VMM itself, or cpr-transfer's second QEMU. */
const imageActor = (d: HandoffDesign) => (transfer(d) ? 'image' : 'vmm');

const notInKernel = (what: string): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run: async () => {
    throw new Unreplayable(`${what} has no uAPI in Linux 7.3`);
  },
});

const unreplayable = (why: string): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run: async () => {
    throw new Unreplayable(why);
  },
});

const errnoCall = (run: (r: PathRun) => Promise<Observed>): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run,
});
const successCall = (run: (r: PathRun) => Promise<Observed>): Mapping => ({
  kind: 'call',
  compare: 'success',
  run,
});

const changeProcess = (actor: string) =>
  errnoCall((r) => r.call(actor, 'ioas_change_process', { fd: r.get('fd') }));

/**
 * exec(): the image keeps the iommufd and the memfd. Root's exec gives CAP_IPC_LOCK back, so it is
 * dropped again unless the design runs as root. A seed design's image gets the RLIMIT_MEMLOCK its
 * event chooses; QEMU's keeps its own (rlimits survive exec).
 */
const exec = (d: HandoffDesign, e: Ev) =>
  successCall(async (r) => {
    const o = await r.call('vmm', 'exec', { keep: `${r.get('fd')},${r.get('memfd')}` });
    if (o.status !== 'done' || o.errno !== '0') return o;
    if (!d.cap) await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
    if (!d.qemu)
      await r.must('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: RLIMIT[e.rlimit ?? 'ok'] * PAGE });
    return o;
  });

export function mapHandoffEvent(e: Ev, variant: string): Mapping {
  const d = design(variant);
  const image = imageActor(d);
  return (
    match(e.type as HandoffEvent)
      .with('VmmFork', () => successCall((r) => r.call('vmm', 'fork', { child: r.actorName('holder') })))
      .with('VmmExec', () => exec(d, e))
      .with('ImageMmap', () =>
        successCall((r) =>
          r.call(image, 'mmap', { length: NMAPS * PAGE, flags: 'SHARED', fd: r.get('memfd') }),
        ),
      )
      .with('HolderIoasChangeProcess', () => changeProcess('holder'))
      .with('ImageIoasChangeProcess', () => changeProcess('vmm'))
      .with('VmmPreSaveChangeProcess', () => changeProcess('vmm'))
      .with('ImageProbeChangeProcess', 'ImagePostLoadChangeProcess', () => changeProcess(image))
      .with('ImageUnmap', () =>
        errnoCall((r) =>
          r.call(image, 'ioas_unmap', { fd: r.get('fd'), ioas: r.get('ioas'), iova: IOVA, length: PAGE }),
        ),
      )
      .with('HolderExit', () => successCall((r) => r.call('holder', 'exit', { code: 0 })))
      // A killed holder's mm is torn down as on exit (exit_mm); the shim's exit stands for the SIGKILL.
      .with('HolderKilled', () => successCall((r) => r.call('holder', 'exit', { code: 137 })))
      .with('ImageExit', () => successCall((r) => r.call(image, 'exit', { code: 1 })))
      .with('VmmExit', () => successCall((r) => r.call('vmm', 'exit', { code: 0 })))
      .with('ImageSetrlimit', () =>
        successCall((r) => r.call('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: RLIMIT.ok * PAGE })),
      )
      // QEMU's `cont` of the source, and the new QEMU that never started: no kernel call.
      .with('VmmResume', 'ImageAbandon', () => ({ kind: 'internal' as const }))
      .with('VmmExecFails', () =>
        unreplayable("the shim's exec cannot be made to fail (QEMU: execvp of a bad path)"),
      )
      .with(
        'VmmInvalidateVaddr',
        'ImageMapVaddr',
        'ImageStageVaddr',
        'HolderStageVaddr',
        'VmmRollbackVaddr',
        () =>
          unreplayable(
            'the type1 designs have no fixture in this adapter (the container adapter replays VADDR with the vfio-pci group)',
          ),
      )
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

/** 7.3's CHANGE_PROCESS designs and QEMU's iommufd flows: what Linux 7.3 implements and this fixture stands for. */
const SUPPORTED = (Object.keys(DESIGNS) as Variant[]).filter((v) => {
  const d = design(v);
  return (d.protocol === 'changeProcess' && d.impl !== 'draft') || d.qemu?.backend === 'iommufd';
});

/** Model actor → the pid whose mm the model charges: cpr-transfer's second QEMU is `qemu2`. */
const procOf = (a: string) => (a === 'image' ? 'qemu2' : a);

export const handoffAdapter: Adapter = {
  model: 'exec-handoff',
  variants: SUPPORTED,
  eventTypes: HANDOFF_EVENTS,
  uuidsPerPath: 0,
  allow: () => ['/dev/iommu'],
  async setup(r, variant) {
    if (!(SUPPORTED as string[]).includes(variant))
      throw new Unreplayable(`exec-handoff/${variant} is not a design Linux 7.3 implements`);
    const d = design(variant);
    const fd = r.num(await r.must('vmm', 'open', { path: '/dev/iommu' }), 'fd');
    r.sym.set('fd', fd);
    // Without CAP_IPC_LOCK the pages are USER (or MM by the option); a root QEMU keeps it: NONE.
    if (!d.cap) await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
    if (d.ctxMode === 'mm')
      await r.must('vmm', 'option', { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: 1 });
    await r.must('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: RLIMIT[d.memlock ?? 'ok'] * PAGE });
    const ioas = r.num(await r.must('vmm', 'ioas_alloc', { fd }), 'ioas_id');
    r.sym.set('ioas', ioas);
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
    // cpr-transfer: the second QEMU exists before the update and holds the same fds (SCM_RIGHTS in QEMU).
    if (transfer(d)) await r.must('vmm', 'fork', { child: r.actorName('image') });
  },
  // VmPin/VmLck of each process after every call: the model's mms pinned_vm and locked_vm.
  observe: (r) => observeVm(r, ['vmm', 'holder', 'image']),
  predict: (c, o) => iommufdVm(c, o, procOf),
  fits: (c, o) => sameObservation(iommufdVm(c, o, procOf), o),
  /**
   * The fixture maps NMAPS areas (the model's default size, maps=2); a path chosen at another
   * `--set maps=N` has N areas (mapped, or unmapped by the application) and other RLIMIT_MEMLOCK
   * values, so none of its states stands for the target.
   */
  unfit: (c) => {
    const maps = c.k.areas.length + c.unmapped;
    return maps === NMAPS ? null : `the fixture maps ${NMAPS} areas (maps=${NMAPS}); this path has ${maps}`;
  },
  map: (e, _actor, variant) => mapHandoffEvent(e as Ev, variant),
  async teardown(r) {
    await r.exitAll();
  },
};
