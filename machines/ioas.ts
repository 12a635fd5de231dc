/**
 * The iommufd IOAS protocol (spec/ioas.md): IOAS alloc and destroy, MAP and
 * MAP_FILE, COPY sharing one pages object, UNMAP with the access unmap
 * notification and its bounded retries, an in-kernel access (pin, unpin,
 * destroy; compliant or not), the accounting modes with RLIMIT_MEMLOCK, and
 * IOMMU_IOAS_CHANGE_PROCESS with its lock order, between a VMM process and a
 * forked child that share the iommufd. Exec kills the VMM's old mm.
 *
 * Actors: `vmm` (the process that maps), `child` (a fork that may call
 * CHANGE_PROCESS and exit), `access` (the driver side of an iommufd access
 * attached to IOAS 1). Every variant is one design of the same factory.
 */
import { setup } from 'xstate';
import {
  defineModel,
  type ModelBody,
  type ModelSnapshot,
  type Params,
  sometimes,
  type TemporalProperty,
} from '../explorer/model.ts';
import * as inv from '../invariants/ioas.ts';
import { type ChangeImpl, changeProcessBody } from './kernel/iommufd-change-process.ts';
import {
  type AccessObj,
  accessPin,
  accessUnpin,
  areaAt,
  type Iommufd,
  insertArea,
  iovaFreeFor,
  liveIoas,
  putPages,
  removeArea,
  setIoas,
  syncPins,
  update,
} from './kernel/iommufd-ioas.ts';
import { type OwnerLog, ownerLog } from './kernel/iommufd-owners.ts';
import { allocPages, type Errno, type KernelFix, killProcMm, WARN, warn } from './kernel/iommufd-pages.ts';
import { type StepFn, type StepResult, transitions } from './kernel/iommufd-steps.ts';
import { downWrite, RWSEM_FREE, type RwSem, upWrite } from './kernel/locks.ts';
import { IOAS_FOOTPRINTS } from './footprints/ioas.ts';
import { forgetResults } from './kernel/views.ts';

export type Actor = 'vmm' | 'child' | 'access';
type Cpu = 'vmm' | 'child';

/** An in-flight multi-step call of the vmm or the child. */
export interface Op {
  readonly ioas?: number;
  readonly slot?: number;
  readonly kind?: 'user' | 'file' | 'copy';
  readonly srcIoas?: number;
  readonly srcSlot?: number;
  readonly tries?: number;
  /** CHANGE_PROCESS: the IOAS ids whose iova_rwsem it holds, in the order taken. */
  readonly held?: readonly number[];
}

export interface IoasCtx {
  readonly ret: Readonly<Record<Actor, string | null>>;
  readonly k: Iommufd;
  readonly op: Readonly<Record<Cpu, Op | null>>;
  readonly log: OwnerLog | null;
  /** MAP/MAP_FILE/COPY calls left, when the design bounds them. */
  readonly budget?: number;
}

/**
 * Every event type of the model, one place: the conformance adapter's
 * exhaustive match is over this list, so a new event type without a mapping
 * to the kernel fails to compile (and a test checks the list is exactly the
 * event types the machine handles).
 */
export const IOAS_EVENT_TYPES = [
  'VmmIoasAlloc',
  'VmmIoasDestroy',
  'VmmIoasMap',
  'VmmIoasMapFile',
  'VmmIoasCopy',
  'VmmIoasUnmap',
  'VmmIoasChangeProcess',
  'VmmExec',
  'VmmIoasFinalize',
  'VmmMapInsert',
  'VmmMapFill',
  'VmmUnmapScan',
  'VmmUnmapNotify',
  'VmmUnmapUnfill',
  'VmmCpTakeCreation',
  'VmmCpTakeIoas',
  'VmmCpApply',
  'ChildIoasChangeProcess',
  'ChildCpTakeCreation',
  'ChildCpTakeIoas',
  'ChildCpApply',
  'ChildExit',
  'AccessPin',
  'AccessUnpin',
  'AccessDestroy',
] as const;

export interface IoasEv {
  /** One of IOAS_EVENT_TYPES (the event generators build some names, so not narrowed here; a test checks the list). */
  readonly type: string;
  readonly ioas?: number;
  readonly slot?: number;
  readonly srcIoas?: number;
  readonly srcSlot?: number;
}

export interface IoasDesign {
  /** IOMMU_OPTION RLIMIT_MODE of the ctx. */
  readonly ctxMode: 'user' | 'mm';
  /** The VMM keeps CAP_IPC_LOCK: its pages are IOPT_PAGES_ACCOUNT_NONE. */
  readonly cap: boolean;
  /** Every IOAS has a (mock) domain, so MAP pins; else only accesses pin. */
  readonly domain: boolean;
  /** IOAS ids live in the initial state. */
  readonly ioas: readonly number[];
  /** Highest IOAS id IOAS_ALLOC may hand out. */
  readonly maxIoas: number;
  /** Whether the VMM calls IOAS_ALLOC and IOMMU_DESTROY. */
  readonly lifecycle: boolean;
  /** The MAP (user VA) and MAP_FILE (memfd) calls the VMM may make. */
  readonly maps: readonly { readonly ioas: number; readonly slot: number; readonly kind: 'user' | 'file' }[];
  readonly copies: readonly {
    readonly src: readonly [number, number];
    readonly dst: readonly [number, number];
  }[];
  readonly vmmChangeProcess: boolean;
  readonly exec: boolean;
  readonly child: boolean;
  readonly access: 'none' | 'compliant' | 'noncompliant';
  /** Slots of IOAS 1 the access pins. */
  readonly accessSlots: readonly number[];
  /** RLIMIT_MEMLOCK of every process, in pages. */
  readonly rlimit: number;
  readonly npages: number;
  /** Unmap notifications before EDEADLOCK: the kernel allows 100 retries (tries > 100); the model far fewer. */
  readonly maxTries: number;
  readonly impl: ChangeImpl;
  /** The patched kernel's fixes (conformance/kernel/patches/); absent: 7.3.4 as released. */
  readonly fixes?: readonly KernelFix[];
  /**
   * At most this many MAP/MAP_FILE/COPY calls in a run (unbounded when
   * absent). Designs whose counters drift on every map/change/unmap cycle
   * have infinitely many states; a budget keeps their search finite.
   */
  readonly mapBudget?: number;
  /**
   * Test-only mutants: 'unmapIgnoresAccesses' unmaps an area an access still
   * pins; 'cpNoCreationLock' lets the child's CHANGE_PROCESS skip
   * ioas_creation_lock and take the IOAS locks in descending ID order.
   */
  readonly mutate?: 'unmapIgnoresAccesses' | 'cpNoCreationLock';
}

export const BASE_DESIGN: IoasDesign = {
  ctxMode: 'user',
  cap: false,
  domain: true,
  ioas: [1],
  maxIoas: 1,
  lifecycle: false,
  maps: [],
  copies: [],
  vmmChangeProcess: false,
  exec: false,
  child: false,
  access: 'none',
  accessSlots: [],
  rlimit: 8,
  npages: 1,
  maxTries: 1,
  impl: '7.3',
};

// ---------------------------------------------------------------- context

export function initialContext(d: IoasDesign): IoasCtx {
  const proc = { uid: 'u', rlimit: d.rlimit, cap: d.cap };
  const access: AccessObj | null =
    d.access === 'none' ? null : { ioas: 1, pins: [], compliant: d.access === 'compliant' };
  return {
    ret: { vmm: null, child: null, access: null },
    k: {
      procs: { vmm: { mm: 'vmm0', ...proc }, ...(d.child && { child: { mm: 'child0', ...proc } }) },
      mms: {
        vmm0: { alive: true, lockedVm: 0, pinnedVm: 0 },
        ...(d.child && { child0: { alive: true, lockedVm: 0, pinnedVm: 0 } }),
      },
      users: { u: 0 },
      pages: [],
      warn: [],
      ctxMode: d.ctxMode,
      domain: d.domain,
      // An attached access holds a reference on its IOAS (device.c:iommufd_access_change_ioas), and so
      // does the domain's HWPT (hw_pagetable.c:iommufd_hwpt_paging_alloc refcount_inc(&ioas->obj.users)):
      // IOMMU_DESTROY of an IOAS with a domain attached is EBUSY (main.c:iommufd_object_remove,
      // refcount_dec_if_one), found by the conformance replay (spec/conformance.md).
      ioas: d.ioas.map((id) => ({
        id,
        live: true,
        users: 1 + (access?.ioas === id ? 1 : 0) + (d.domain ? 1 : 0),
        iova: RWSEM_FREE,
      })),
      areas: [],
      creation: RWSEM_FREE,
      access,
      ...(d.fixes && d.fixes.length > 0 && { fixes: d.fixes }),
    },
    op: { vmm: null, child: null },
    log: null,
    ...(d.mapBudget !== undefined && { budget: d.mapBudget }),
  };
}

const ret = (c: IoasCtx, actor: Actor, r: string | null): IoasCtx => ({
  ...c,
  ret: { ...c.ret, [actor]: r },
});
const setOp = (c: IoasCtx, cpu: Cpu, op: Op | null): IoasCtx => ({ ...c, op: { ...c.op, [cpu]: op } });
const withK = (c: IoasCtx, f: (k: Iommufd) => void): IoasCtx => ({ ...c, k: update(c.k, f) });
const done = (c: IoasCtx, actor: Actor, r: Errno | null, cpu?: Cpu): StepResult<IoasCtx> => ({
  next: 'idle',
  ctx: ret(cpu ? setOp(c, cpu, null) : c, actor, r ?? '0'),
});

// ---------------------------------------------------------------- vmm calls

/** IOMMU_IOAS_ALLOC: the id is reserved now (XA_ZERO_ENTRY), published by iommufd_object_finalize. */
const ioasAlloc =
  (d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    let id = 1;
    while (c.k.ioas.some((i) => i.id === id)) id++;
    if (id > d.maxIoas) return null; // the model's bound, not a kernel limit
    const k = update(c.k, (k) => {
      k.ioas = [...k.ioas, { id, live: false, users: 1, iova: RWSEM_FREE }].sort((x, y) => x.id - y.id);
    });
    return { next: 'allocFinalize', ctx: setOp(ret({ ...c, k }, 'vmm', null), 'vmm', { ioas: id }) };
  };

/** iommufd_ioas_alloc_ioctl: down_read(ioas_creation_lock) around finalize, so it waits for CHANGE_PROCESS. */
const ioasFinalize: StepFn<IoasCtx, IoasEv> = (c) => {
  if (c.k.creation.writer !== null) return null;
  const id = c.op.vmm!.ioas!;
  return done(
    withK(c, (k) => setIoas(k, id, (i) => ({ ...i, live: true }))),
    'vmm',
    null,
    'vmm',
  );
};

/** IOMMU_DESTROY of an IOAS: main.c:iommufd_object_remove (EBUSY unless users == 1), then iopt_unmap_all. */
const ioasDestroy: StepFn<IoasCtx, IoasEv> = (c, ev) => {
  const i = liveIoas(c.k, ev.ioas!);
  if (!i) return done(c, 'vmm', 'ENOENT');
  if (i.users > 1) return done(c, 'vmm', 'EBUSY');
  const k = update(c.k, (k) => {
    for (const a of k.areas.filter((a) => a.ioas === i.id)) removeArea(k, a.ioas, a.slot, k.procs.vmm.mm);
    k.ioas = k.ioas.filter((x) => x.id !== i.id);
  });
  return done({ ...c, k }, 'vmm', null);
};

/** IOMMU_IOAS_MAP / MAP_FILE / COPY: iommufd_get_ioas (ENOENT) runs before anything else. */
const mapCall =
  (kind: 'user' | 'file' | 'copy'): StepFn<IoasCtx, IoasEv> =>
  (c, ev) => {
    if (c.budget === 0) return null; // the model's bound, not a kernel limit
    if (c.budget !== undefined) c = { ...c, budget: c.budget - 1 };
    const first = kind === 'copy' ? ev.srcIoas! : ev.ioas!;
    if (!liveIoas(c.k, first)) return done(c, 'vmm', 'ENOENT');
    const op: Op = { ioas: ev.ioas, slot: ev.slot, kind, srcIoas: ev.srcIoas, srcSlot: ev.srcSlot };
    return { next: 'mapInsert', ctx: setOp(ret(c, 'vmm', null), 'vmm', op) };
  };

/**
 * io_pagetable.c:iopt_alloc_area_pages under iova_rwsem (COPY first takes
 * the source's pages with iopt_get_pages: ENOENT for a missing or busy area).
 * The new area has pages == NULL until it is filled.
 */
const mapInsert =
  (d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const op = c.op.vmm!;
    const dst = op.ioas!;
    const copy = op.kind === 'copy';
    if (!iovaFreeFor(c.k, dst, 'vmm') || (copy && !iovaFreeFor(c.k, op.srcIoas!, 'vmm'))) return null;
    let pagesId: number;
    if (copy) {
      const src = areaAt(c.k, op.srcIoas!, op.srcSlot!);
      if (!src || src.busy) return done(c, 'vmm', 'ENOENT', 'vmm');
      if (!liveIoas(c.k, dst)) return done(c, 'vmm', 'ENOENT', 'vmm');
      pagesId = src.pages;
    } else {
      pagesId = -1;
    }
    if (areaAt(c.k, dst, op.slot!)) return done(c, 'vmm', 'EEXIST', 'vmm');
    const k = update(c.k, (k) => {
      if (!copy) pagesId = allocPages(k, op.kind as 'user' | 'file', 'vmm', k.ctxMode, d.npages);
      insertArea(k, {
        ioas: dst,
        slot: op.slot!,
        pages: pagesId,
        busy: true,
        filled: false,
        accesses: 0,
        prevent: false,
      });
    });
    return { next: 'mapFill', ctx: { ...c, k } };
  };

/**
 * iopt_fill_domains_pages (pins and charges when the IOAS has a domain; a
 * failure aborts the area, so MAP is all or nothing), then area->pages is
 * published under iova_rwsem.
 */
const mapFill: StepFn<IoasCtx, IoasEv> = (c) => {
  const op = c.op.vmm!;
  if (!iovaFreeFor(c.k, op.ioas!, 'vmm')) return null;
  let err: Errno | null = null;
  const k = update(c.k, (k) => {
    const area = areaAt(k, op.ioas!, op.slot!)!;
    area.filled = true;
    err = syncPins(k, area.pages, k.procs.vmm.mm);
    if (err) {
      k.areas = k.areas.filter((a) => a !== area);
      putPages(k, area.pages);
    } else {
      area.busy = false;
    }
  });
  return done({ ...c, k }, 'vmm', err, 'vmm');
};

/** IOMMU_IOAS_UNMAP of one slot: iommufd_get_ioas first (ENOENT). */
const unmapCall: StepFn<IoasCtx, IoasEv> = (c, ev) => {
  if (!liveIoas(c.k, ev.ioas!)) return done(c, 'vmm', 'ENOENT');
  return {
    next: 'unmapScan',
    ctx: setOp(ret(c, 'vmm', null), 'vmm', { ioas: ev.ioas, slot: ev.slot, tries: 0 }),
  };
};

/**
 * io_pagetable.c:iopt_unmap_iova_range, the part under iova_rwsem: EBUSY for
 * an area in flight, ENOENT when nothing was unmapped, and an area with
 * access pins is marked prevent_access and its accesses notified (lock
 * dropped) before the retry.
 */
const unmapScan =
  (d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const op = c.op.vmm!;
    if (!iovaFreeFor(c.k, op.ioas!, 'vmm')) return null;
    const area = areaAt(c.k, op.ioas!, op.slot!);
    if (!area) return done(c, 'vmm', 'ENOENT', 'vmm');
    if (area.busy) return done(c, 'vmm', 'EBUSY', 'vmm');
    const notify = area.accesses > 0 && d.mutate !== 'unmapIgnoresAccesses';
    const k = update(c.k, (k) => {
      const a = areaAt(k, op.ioas!, op.slot!)!;
      if (notify) a.prevent = true;
      else a.busy = true; // area->pages = NULL, then iova_rwsem is dropped for the unfill
    });
    return { next: notify ? 'unmapNotify' : 'unmapUnfill', ctx: { ...c, k } };
  };

/**
 * device.c:iommufd_access_notify_unmap → ops->unmap in the unmapper's thread.
 * A compliant access unpins its items in the area (iommufd_access_unpin_pages
 * takes iova_rwsem for read); a non-compliant one does not. After more than
 * maxTries notifications: WARN_ON and EDEADLOCK, prevent_access left set.
 */
const unmapNotify =
  (d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const op = c.op.vmm!;
    if (!iovaFreeFor(c.k, op.ioas!, 'vmm')) return null;
    const tries = op.tries! + 1;
    const k = update(c.k, (k) => {
      const acc = k.access;
      if (acc?.compliant && acc.ioas === op.ioas) accessUnpin(k, op.slot!, k.procs.vmm.mm);
      if (tries > d.maxTries) warn(k, WARN.unmapTries);
    });
    if (tries > d.maxTries) return done({ ...c, k }, 'vmm', 'EDEADLOCK', 'vmm');
    return { next: 'unmapScan', ctx: setOp({ ...c, k }, 'vmm', { ...op, tries }) };
  };

/** iopt_area_unfill_domains + iopt_abort_area + iopt_put_pages, without iova_rwsem. */
const unmapUnfill: StepFn<IoasCtx, IoasEv> = (c) => {
  const op = c.op.vmm!;
  const k = update(c.k, (k) => removeArea(k, op.ioas!, op.slot!, k.procs.vmm.mm));
  return done({ ...c, k }, 'vmm', null, 'vmm');
};

/** exec(): the old mm dies (mmget_not_zero fails from now on); the iommufd stays open. */
const exec: StepFn<IoasCtx, IoasEv> = (c) => {
  if (c.k.procs.vmm.mm !== 'vmm0') return null; // one exec per run (the model's bound)
  return done(
    withK(c, (k) => killProcMm(k, 'vmm', 'vmm1')),
    'vmm',
    null,
  );
};

// ---------------------------------------------------------------- CHANGE_PROCESS

const cpCall =
  (cpu: Cpu, d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const skipCreation = cpu === 'child' && d.mutate === 'cpNoCreationLock';
    return { next: skipCreation ? 'cpIoas' : 'cpCreation', ctx: setOp(ret(c, cpu, null), cpu, { held: [] }) };
  };

/** iommufd_take_all_iova_rwsem: down_write(&ictx->ioas_creation_lock) first. */
const cpTakeCreation =
  (cpu: Cpu): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    if (c.k.creation.writer !== null || c.k.creation.readers.length > 0) return null;
    return { next: 'cpIoas', ctx: { ...c, k: { ...c.k, creation: downWrite(c.k.creation, cpu) } } };
  };

/** The next live IOAS in xa_for_each (ID) order after the ones held; the mutant walks down. */
function nextIoas(c: IoasCtx, held: readonly number[], descending: boolean): number | undefined {
  const live = c.k.ioas.filter((i) => i.live && !held.includes(i.id)).map((i) => i.id);
  if (descending) {
    const below = live.filter((id) => held.length === 0 || id < Math.min(...held));
    return below.length ? Math.max(...below) : undefined;
  }
  const above = live.filter((id) => held.length === 0 || id > Math.max(...held));
  return above.length ? Math.min(...above) : undefined;
}

const descendingFor = (cpu: Cpu, d: IoasDesign) => cpu === 'child' && d.mutate === 'cpNoCreationLock';

/** refcount_inc_not_zero(&obj->users) + down_write_nest_lock(&ioas->iopt.iova_rwsem, ...). */
const cpTakeIoas =
  (cpu: Cpu, d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const held = c.op[cpu]!.held!;
    const id = nextIoas(c, held, descendingFor(cpu, d));
    if (id === undefined) return null;
    const i = liveIoas(c.k, id)!;
    if (i.iova.writer !== null) return null;
    const k = update(c.k, (k) =>
      setIoas(k, id, (x) => ({ ...x, users: x.users + 1, iova: downWrite(x.iova, cpu) })),
    );
    return { next: 'cpIoas', ctx: setOp({ ...c, k }, cpu, { held: [...held, id] }) };
  };

/** The body under every lock (kernel/iommufd-change-process.ts), then iommufd_release_all_iova_rwsem. */
const cpApply =
  (cpu: Cpu, d: IoasDesign): StepFn<IoasCtx, IoasEv> =>
  (c) => {
    const held = c.op[cpu]!.held!;
    if (nextIoas(c, held, descendingFor(cpu, d)) !== undefined) return null;
    let err: Errno | null = null;
    const k = update(c.k, (k) => {
      err = changeProcessBody(k, [...held].sort(), cpu, d.impl);
      for (const id of held) setIoas(k, id, (x) => ({ ...x, users: x.users - 1, iova: upWrite(x.iova) }));
      if (k.creation.writer === cpu) k.creation = upWrite(k.creation);
    });
    const log = ownerLog(
      c,
      { ...c, k },
      {
        by: cpu,
        call: 'IOMMU_IOAS_CHANGE_PROCESS',
        ret: err ?? '0',
        callerMm: c.k.procs[cpu].mm,
        targets: c.k.areas.flatMap((a, i) => (held.includes(a.ioas) ? [i] : [])),
      },
    );
    return done({ ...c, k, log }, cpu, err, cpu);
  };

// ---------------------------------------------------------------- child and access

const childExit: StepFn<IoasCtx, IoasEv> = (c) => ({
  next: 'exited',
  ctx: ret(
    withK(c, (k) => killProcMm(k, 'child', null)),
    'child',
    '0',
  ),
});

/** IOMMU_TEST_OP_ACCESS_PAGES on the whole area: iommufd_access_pin_pages under iova_rwsem (read). */
const accessPinStep: StepFn<IoasCtx, IoasEv> = (c, ev) => {
  const acc = c.k.access!;
  if (!iovaFreeFor(c.k, acc.ioas!, 'access')) return null;
  let err: Errno | null = null;
  const k = update(c.k, (k) => {
    err = accessPin(k, ev.slot!);
  });
  return { next: 'attached', ctx: ret({ ...c, k }, 'access', err ?? '0') };
};

/** IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: ENOENT for an item the unmap callback already dropped. */
const accessUnpinStep: StepFn<IoasCtx, IoasEv> = (c, ev) => {
  const acc = c.k.access!;
  if (!iovaFreeFor(c.k, acc.ioas!, 'access')) return null;
  if (!acc.pins.includes(ev.slot!)) return { next: 'attached', ctx: ret(c, 'access', 'ENOENT') };
  const k = update(c.k, (k) => accessUnpin(k, ev.slot!, null));
  return { next: 'attached', ctx: ret({ ...c, k }, 'access', '0') };
};

/**
 * close() of the access fd: iommufd_access_destroy → change_ioas(NULL), whose
 * unmap(0, ULONG_MAX) makes the driver unpin every item, then the IOAS ref is dropped.
 */
const accessDestroyStep: StepFn<IoasCtx, IoasEv> = (c) => {
  const acc = c.k.access!;
  if (!iovaFreeFor(c.k, acc.ioas!, 'access')) return null;
  const k = update(c.k, (k) => {
    for (const slot of acc.pins) accessUnpin(k, slot, null);
    setIoas(k, acc.ioas!, (x) => ({ ...x, users: x.users - 1 }));
    k.access = null;
  });
  return { next: 'destroyed', ctx: ret({ ...c, k }, 'access', '0') };
};

// ---------------------------------------------------------------- machine

function cpStates(cpu: Cpu, d: IoasDesign, prefix: 'Vmm' | 'Child') {
  return {
    cpCreation: { on: { [`${prefix}CpTakeCreation`]: transitions(cpTakeCreation(cpu), ['cpIoas']) } },
    cpIoas: {
      on: {
        [`${prefix}CpTakeIoas`]: transitions(cpTakeIoas(cpu, d), ['cpIoas']),
        [`${prefix}CpApply`]: transitions(cpApply(cpu, d), ['idle']),
      },
    },
  };
}

export function createIoasMachine(d: IoasDesign) {
  const vmm = {
    initial: 'idle',
    states: {
      idle: {
        on: {
          VmmIoasAlloc: transitions(ioasAlloc(d), ['allocFinalize']),
          VmmIoasDestroy: transitions(ioasDestroy, ['idle']),
          VmmIoasMap: transitions(mapCall('user'), ['idle', 'mapInsert']),
          VmmIoasMapFile: transitions(mapCall('file'), ['idle', 'mapInsert']),
          VmmIoasCopy: transitions(mapCall('copy'), ['idle', 'mapInsert']),
          VmmIoasUnmap: transitions(unmapCall, ['idle', 'unmapScan']),
          VmmIoasChangeProcess: transitions(cpCall('vmm', d), ['cpCreation', 'cpIoas']),
          VmmExec: transitions(exec, ['idle']),
        },
      },
      allocFinalize: { on: { VmmIoasFinalize: transitions(ioasFinalize, ['idle']) } },
      mapInsert: { on: { VmmMapInsert: transitions(mapInsert(d), ['idle', 'mapFill']) } },
      mapFill: { on: { VmmMapFill: transitions(mapFill, ['idle']) } },
      unmapScan: { on: { VmmUnmapScan: transitions(unmapScan(d), ['idle', 'unmapNotify', 'unmapUnfill']) } },
      unmapNotify: { on: { VmmUnmapNotify: transitions(unmapNotify(d), ['idle', 'unmapScan']) } },
      unmapUnfill: { on: { VmmUnmapUnfill: transitions(unmapUnfill, ['idle']) } },
      ...cpStates('vmm', d, 'Vmm'),
    },
  };
  const child = d.child
    ? {
        initial: 'idle',
        states: {
          idle: {
            on: {
              ChildIoasChangeProcess: transitions(cpCall('child', d), ['cpCreation', 'cpIoas']),
              ChildExit: transitions(childExit, ['exited']),
            },
          },
          ...cpStates('child', d, 'Child'),
          exited: { type: 'final' },
        },
      }
    : { initial: 'absent', states: { absent: { type: 'final' } } };
  const access =
    d.access !== 'none'
      ? {
          initial: 'attached',
          states: {
            attached: {
              on: {
                AccessPin: transitions(accessPinStep, ['attached']),
                AccessUnpin: transitions(accessUnpinStep, ['attached']),
                AccessDestroy: transitions(accessDestroyStep, ['destroyed']),
              },
            },
            destroyed: { type: 'final' },
          },
        }
      : { initial: 'absent', states: { absent: { type: 'final' } } };
  return setup({ types: { context: {} as IoasCtx, events: {} as IoasEv } }).createMachine({
    id: 'ioas',
    type: 'parallel',
    context: initialContext(d),
    states: { vmm, child, access },
  } as any);
}

/** Every call and step worth trying under a design (the engine drops the ones not enabled). */
export function ioasEvents(d: IoasDesign): (s: ModelSnapshot<IoasCtx>) => IoasEv[] {
  const positions = [
    ...new Map(
      [...d.maps.map((m) => [m.ioas, m.slot]), ...d.copies.map((c) => c.dst)].map(([i, s]) => [
        `${i}.${s}`,
        { ioas: i, slot: s },
      ]),
    ).values(),
  ];
  const all: IoasEv[] = [
    ...d.maps.map((m) => ({
      type: m.kind === 'user' ? 'VmmIoasMap' : 'VmmIoasMapFile',
      ioas: m.ioas,
      slot: m.slot,
    })),
    ...d.copies.map((c) => ({
      type: 'VmmIoasCopy',
      ioas: c.dst[0],
      slot: c.dst[1],
      srcIoas: c.src[0],
      srcSlot: c.src[1],
    })),
    ...positions.map((p) => ({ type: 'VmmIoasUnmap', ...p })),
    ...(d.lifecycle
      ? [
          { type: 'VmmIoasAlloc' },
          ...Array.from({ length: d.maxIoas }, (_, i) => ({ type: 'VmmIoasDestroy', ioas: i + 1 })),
        ]
      : []),
    ...(d.vmmChangeProcess ? [{ type: 'VmmIoasChangeProcess' }] : []),
    ...(d.exec ? [{ type: 'VmmExec' }] : []),
    ...[
      'VmmIoasFinalize',
      'VmmMapInsert',
      'VmmMapFill',
      'VmmUnmapScan',
      'VmmUnmapNotify',
      'VmmUnmapUnfill',
      'VmmCpTakeCreation',
      'VmmCpTakeIoas',
      'VmmCpApply',
    ].map((type) => ({ type })),
    ...(d.child
      ? ['ChildIoasChangeProcess', 'ChildCpTakeCreation', 'ChildCpTakeIoas', 'ChildCpApply', 'ChildExit'].map(
          (type) => ({ type }),
        )
      : []),
    ...(d.access !== 'none'
      ? [
          ...d.accessSlots.flatMap((slot) => [
            { type: 'AccessPin', slot },
            { type: 'AccessUnpin', slot },
          ]),
          { type: 'AccessDestroy' },
        ]
      : []),
  ];
  // An access pins one item a slot in this model: AccessPin is offered only for slots it has not pinned.
  return (s) => all.filter((e) => e.type !== 'AccessPin' || !s.context.k.access?.pins.includes(e.slot!));
}

export const IOAS_CALLS = [
  'VmmIoasAlloc',
  'VmmIoasDestroy',
  'VmmIoasMap',
  'VmmIoasMapFile',
  'VmmIoasCopy',
  'VmmIoasUnmap',
  'VmmIoasChangeProcess',
  'VmmExec',
  'ChildIoasChangeProcess',
  'ChildExit',
  'AccessPin',
  'AccessUnpin',
  'AccessDestroy',
] as const;

/** A design for the named variant, with test-only overrides (mutants, other bounds). */
export function ioasDesign(
  variant: keyof typeof VARIANT_DESIGNS,
  over: Partial<IoasDesign> = {},
): IoasDesign {
  return { ...BASE_DESIGN, ...VARIANT_DESIGNS[variant], ...over };
}

/** The areas most variants map into IOAS 1 (the default of the parameter `areas`). */
export const DEFAULT_AREAS = 2;

/**
 * The named variant's design with `areas` areas in IOAS 1 where it has two
 * (the one-area designs, access-unmap-noncompliant and copy-lifecycle,
 * get `areas - 1`): slots 0, 1, 2 ... with the kinds alternating as the
 * design's first two, the access pinning every slot if it pinned every one,
 * RLIMIT_MEMLOCK scaled with the pages (what fitted still fits, what did not
 * still does not), and a map budget raised by the areas added.
 */
export function sizedDesign(variant: keyof typeof VARIANT_DESIGNS, areas: number): IoasDesign {
  const d = ioasDesign(variant);
  const own = d.maps.length;
  const n = own + areas - DEFAULT_AREAS;
  if (n === own) return d;
  const other = (k: 'user' | 'file') => (k === 'user' ? 'file' : 'user');
  const kindOf = (slot: number) =>
    slot % 2 === 0 ? d.maps[0].kind : (d.maps[1]?.kind ?? other(d.maps[0].kind));
  const rlimit = (d.rlimit * n) / own;
  if (!Number.isInteger(rlimit))
    throw new Error(`ioas/${variant}: rlimit ${d.rlimit} does not scale to ${n} areas`);
  return {
    ...d,
    maps: Array.from({ length: n }, (_x, slot) => ({ ioas: 1, slot, kind: kindOf(slot) })),
    accessSlots: d.accessSlots.length === own ? Array.from({ length: n }, (_x, slot) => slot) : d.accessSlots,
    rlimit,
    ...(d.mapBudget !== undefined && { mapBudget: d.mapBudget + n - own }),
  };
}

/** The fixes of conformance/kernel/patches/ (spec/findings/F1-*.md, F2-*.md). */
const PATCHED: readonly KernelFix[] = ['F1', 'F2'];

const CHANGE_PROCESS: Partial<IoasDesign> = {
  maps: [
    { ioas: 1, slot: 0, kind: 'file' },
    { ioas: 1, slot: 1, kind: 'user' },
  ],
  vmmChangeProcess: true,
  exec: true,
  child: true,
  rlimit: 4,
};

export const VARIANT_DESIGNS = {
  'access-unmap': {
    maps: [
      { ioas: 1, slot: 0, kind: 'user' },
      { ioas: 1, slot: 1, kind: 'file' },
    ],
    access: 'compliant',
    accessSlots: [0, 1],
  },
  'access-unmap-noncompliant': {
    maps: [{ ioas: 1, slot: 0, kind: 'file' }],
    access: 'noncompliant',
    accessSlots: [0],
  },
  'copy-lifecycle': {
    maxIoas: 2,
    lifecycle: true,
    maps: [{ ioas: 1, slot: 0, kind: 'file' }],
    copies: [{ src: [1, 0], dst: [2, 0] }],
    vmmChangeProcess: true,
    child: true,
    rlimit: 2,
  },
  'change-process': CHANGE_PROCESS,
  'lazy-access': {
    domain: false,
    maps: [
      { ioas: 1, slot: 0, kind: 'file' },
      { ioas: 1, slot: 1, kind: 'user' },
    ],
    exec: true,
    access: 'compliant',
    accessSlots: [0, 1],
    rlimit: 2,
  },
  'change-process-mm': { ...CHANGE_PROCESS, ctxMode: 'mm', mapBudget: 3 },
  'change-process-none': { ...CHANGE_PROCESS, cap: true, mapBudget: 3 },
  'change-process-mm-fixed': { ...CHANGE_PROCESS, ctxMode: 'mm', mapBudget: 3, fixes: PATCHED },
  'change-process-none-fixed': { ...CHANGE_PROCESS, cap: true, mapBudget: 3, fixes: PATCHED },
} satisfies Record<string, Partial<IoasDesign>>;

// ---------------------------------------------------------------- in the thread's words

const at = (ioas?: number, slot?: number) => `ioas${ioas} slot${slot}`;
const cpuOf = (type: string): Cpu => (type.startsWith('Child') ? 'child' : 'vmm');

/** The uAPI calls (include/uapi/linux/iommufd.h), as the VMM or the child writes them. */
const CALL_LABELS: Readonly<Record<string, (e: IoasEv) => string>> = {
  VmmIoasAlloc: () => 'ioctl(iommufd, IOMMU_IOAS_ALLOC)',
  VmmIoasDestroy: (e) => `ioctl(iommufd, IOMMU_DESTROY, ioas${e.ioas})`,
  VmmIoasMap: (e) => `ioctl(iommufd, IOMMU_IOAS_MAP, ${at(e.ioas, e.slot)})`,
  VmmIoasMapFile: (e) => `ioctl(iommufd, IOMMU_IOAS_MAP_FILE, ${at(e.ioas, e.slot)})`,
  VmmIoasCopy: (e) => `ioctl(iommufd, IOMMU_IOAS_COPY, ${at(e.srcIoas, e.srcSlot)} → ${at(e.ioas, e.slot)})`,
  VmmIoasUnmap: (e) => `ioctl(iommufd, IOMMU_IOAS_UNMAP, ${at(e.ioas, e.slot)})`,
  VmmIoasChangeProcess: () => 'ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)',
  ChildIoasChangeProcess: () => 'ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)',
  VmmExec: () => 'execve(vmm)',
  ChildExit: () => 'exit(child)',
};

/** The kernel steps of the multi-step calls (drivers/iommu/iommufd/), named for the function and the step. */
const stepLabels = (d: IoasDesign): Readonly<Record<string, (e: IoasEv, c: IoasCtx) => string>> => ({
  VmmIoasFinalize: () => 'vmm: iommufd_ioas_alloc_ioctl: iommufd_object_finalize',
  VmmMapInsert: (_e, c) => {
    const op = c.op.vmm;
    if (!op) return 'vmm: iopt_alloc_area_pages';
    const area = `iopt_alloc_area_pages(${at(op.ioas, op.slot)})`;
    return op.kind === 'copy'
      ? `vmm: iopt_get_pages(${at(op.srcIoas, op.srcSlot)}), ${area}`
      : `vmm: ${area}`;
  },
  VmmMapFill: () => 'vmm: iopt_map_pages: iopt_fill_domains_pages',
  VmmUnmapScan: () => 'vmm: iopt_unmap_iova_range: down_write(iova_rwsem)',
  VmmUnmapNotify: () => 'vmm: iommufd_access_notify_unmap → access->ops->unmap',
  VmmUnmapUnfill: () => 'vmm: iopt_unmap_iova_range: iopt_area_unfill_domains',
  CpTakeCreation: (e) => `${cpuOf(e.type)}: iommufd_take_all_iova_rwsem: down_write(ioas_creation_lock)`,
  CpTakeIoas: (e, c) => {
    const cpu = cpuOf(e.type);
    const id = nextIoas(c, c.op[cpu]?.held ?? [], descendingFor(cpu, d));
    return `${cpu}: iommufd_take_all_iova_rwsem: down_write(ioas${id}'s iova_rwsem)`;
  },
  CpApply: (e) => `${cpuOf(e.type)}: iommufd_ioas_change_process: move the owner, unlock`,
  AccessPin: (e) => `access: iommufd_access_pin_pages(${at(1, e.slot)})`,
  AccessUnpin: (e) => `access: iommufd_access_unpin_pages(${at(1, e.slot)})`,
  AccessDestroy: () => 'access: iommufd_access_destroy',
});

/** How each event reads in the thread (the reports append the result). */
export function ioasLabel(d: IoasDesign) {
  const steps = stepLabels(d);
  return (e: IoasEv, s: ModelSnapshot<IoasCtx>): string => {
    const call = CALL_LABELS[e.type];
    if (call) return call(e);
    const step = steps[e.type] ?? steps[e.type.replace(/^(Vmm|Child)/, '')];
    if (!step) throw new Error(`no label for ${e.type}`);
    return step(e, s.context);
  };
}

const holder = (r: RwSem): string => r.writer ?? r.readers.join(', ');

/** `on ioas1's iova_rwsem, held by child` when another actor holds it for write. */
function iovaHeld(c: IoasCtx, ioas: number | undefined, me: string): string | undefined {
  if (ioas === undefined || iovaFreeFor(c.k, ioas, me)) return undefined;
  const i = c.k.ioas.find((x) => x.id === ioas);
  return `on ioas${ioas}'s iova_rwsem, held by ${i ? holder(i.iova) : '?'}`;
}

/** The locks a CHANGE_PROCESS in progress holds, for "holding ..." */
function cpHolds(c: IoasCtx, cpu: Cpu): string {
  const held = [
    ...(c.k.creation.writer === cpu ? ['ioas_creation_lock'] : []),
    ...(c.op[cpu]?.held ?? []).map((id) => `ioas${id}'s iova_rwsem`),
  ];
  return held.length ? ` (holding ${held.join(', ')})` : '';
}

function cpuWait(d: IoasDesign, c: IoasCtx, cpu: Cpu, state: string): string | undefined {
  const op = c.op[cpu];
  const inFn = (fn: string, on: string | undefined) => on && `in ${fn}: ${on}`;
  switch (state) {
    case 'allocFinalize': {
      const w = c.k.creation.writer;
      return w === null ? undefined : `in IOMMU_IOAS_ALLOC: down_read(ioas_creation_lock), held by ${w}`;
    }
    case 'mapInsert':
      return inFn(
        'iopt_alloc_area_pages',
        iovaHeld(c, op?.ioas, cpu) ?? (op?.kind === 'copy' ? iovaHeld(c, op.srcIoas, cpu) : undefined),
      );
    case 'mapFill':
      return inFn('iopt_map_pages, to publish area->pages', iovaHeld(c, op?.ioas, cpu));
    case 'unmapScan':
      return inFn('iopt_unmap_iova_range', iovaHeld(c, op?.ioas, cpu));
    case 'unmapNotify':
      return inFn("the access's unmap callback (iommufd_access_unpin_pages)", iovaHeld(c, op?.ioas, cpu));
    case 'cpCreation': {
      const r = c.k.creation;
      if (r.writer === null && r.readers.length === 0) return undefined;
      return `in iommufd_take_all_iova_rwsem: down_write(ioas_creation_lock), held by ${holder(r)}`;
    }
    case 'cpIoas': {
      const id = nextIoas(c, op?.held ?? [], descendingFor(cpu, d));
      const on = id === undefined ? undefined : iovaHeld(c, id, cpu);
      return on && `in iommufd_take_all_iova_rwsem${cpHolds(c, cpu)}: ${on}`;
    }
    default:
      return undefined;
  }
}

/** What a blocked actor waits for: a lock another actor holds across steps (only CHANGE_PROCESS does). */
export const ioasWaits =
  (d: IoasDesign) =>
  (s: ModelSnapshot<IoasCtx>, actor: string): string | undefined => {
    const c = s.context;
    const state = (s.value as Record<string, string>)[actor];
    if (actor === 'access') {
      const on = state === 'attached' ? iovaHeld(c, c.k.access?.ioas ?? undefined, 'access') : undefined;
      return on && `in its next pin, unpin or destroy: ${on}`;
    }
    return cpuWait(d, c, actor as Cpu, state);
  };

// ---------------------------------------------------------------- coverage

const CP_SKIP =
  'only the cpNoCreationLock test mutant skips ioas_creation_lock (iommufd_take_all_iova_rwsem always takes it first)';

/**
 * The transitions a design never fires, with the reason, derived from the
 * design itself: the calls it does not make, and the branches its IOASes,
 * maps and access cannot take. Every variant's list is checked by `npm start`.
 */
export function ioasUnreachable(d: IoasDesign): Record<string, string> {
  const out: Record<string, string> = {};
  const ioas1Stays = d.lifecycle
    ? "IOAS 1 never goes away (IOMMU_DESTROY of it is EBUSY: the domain's HWPT holds a users reference)"
    : 'IOAS 1 never goes away (this variant makes no IOMMU_DESTROY)';
  if (!d.lifecycle) {
    const why = 'this variant makes no IOMMU_IOAS_ALLOC or IOMMU_DESTROY (its IOAS exists from the start)';
    out['vmm.idle#VmmIoasAlloc'] = why;
    out['vmm.idle#VmmIoasDestroy'] = why;
    out['vmm.allocFinalize#VmmIoasFinalize'] = why;
  }
  for (const [type, kind, name] of [
    ['VmmIoasMap', 'user', 'IOMMU_IOAS_MAP of a user VA'],
    ['VmmIoasMapFile', 'file', 'IOMMU_IOAS_MAP_FILE'],
  ] as const) {
    const maps = d.maps.filter((m) => m.kind === kind);
    if (maps.length === 0) out[`vmm.idle#${type}`] = `this variant makes no ${name}`;
    else if (maps.every((m) => m.ioas === 1))
      out[`vmm.idle#${type}[0]`] = `iommufd_get_ioas is ENOENT only for a missing IOAS, and ${ioas1Stays}`;
  }
  if (d.copies.length === 0) out['vmm.idle#VmmIoasCopy'] = 'this variant makes no IOMMU_IOAS_COPY';
  else if (d.copies.every((c) => c.src[0] === 1))
    out['vmm.idle#VmmIoasCopy[0]'] = `every COPY is from IOAS 1, and ${ioas1Stays}`;
  if ([...d.maps.map((m) => m.ioas), ...d.copies.map((c) => c.dst[0])].every((id) => id === 1))
    out['vmm.idle#VmmIoasUnmap[0]'] = `every UNMAP is of IOAS 1, and ${ioas1Stays}`;
  if (!d.vmmChangeProcess) {
    const why = 'the VMM makes no IOMMU_IOAS_CHANGE_PROCESS in this variant';
    out['vmm.idle#VmmIoasChangeProcess'] = why;
    out['vmm.cp*'] = why;
  } else out['vmm.idle#VmmIoasChangeProcess[1]'] = CP_SKIP;
  if (d.child) out['child.idle#ChildIoasChangeProcess[1]'] = CP_SKIP;
  if (!d.exec) out['vmm.idle#VmmExec'] = 'no exec in this variant';
  if (d.access === 'none') {
    const why = 'no access is attached: num_accesses is 0, iopt_unmap_iova_range never notifies';
    out['vmm.unmapScan#VmmUnmapScan[1]'] = why;
    out['vmm.unmapNotify#VmmUnmapNotify'] = why;
  } else if (d.access === 'compliant') {
    out['vmm.unmapNotify#VmmUnmapNotify[0]'] =
      'a compliant access unpins at the first notification, and prevent_access makes later pins of the ' +
      'area EINVAL: the retry bound is never passed, no EDEADLOCK';
  }
  return out;
}

/** Witnesses that a design's verdicts are not vacuous: its maps, accesses, copies and CHANGE_PROCESS happen. */
export function ioasWitnesses(d: IoasDesign): Record<string, TemporalProperty<IoasCtx>> {
  const out: Record<string, TemporalProperty<IoasCtx>> = {
    mapCompletes: sometimes((s) => s.context.k.areas.some((a) => !a.busy)),
  };
  if (d.access !== 'none') out.accessPins = sometimes((s) => (s.context.k.access?.pins.length ?? 0) > 0);
  if (d.access !== 'none')
    out.unmapNotifiesTheAccess = sometimes((s) => s.context.k.areas.some((a) => a.prevent));
  if (d.copies.length > 0) {
    out.copySharesPages = sometimes(
      (s) => new Set(s.context.k.areas.map((a) => a.pages)).size < s.context.k.areas.length,
    );
  }
  if (d.vmmChangeProcess || d.child) {
    out.changeProcessSucceeds = sometimes(
      (s) => s.context.log?.call === 'IOMMU_IOAS_CHANGE_PROCESS' && s.context.log.ret === '0',
    );
  }
  return out;
}

/**
 * The variants at the size `p`. Their pinned state counts are those of the
 * default size (areas=2); their expected verdicts and unreachable lists
 * (derived from each design) hold at every size (spec/ioas.md, "Sizes").
 */
function body(p: Params): ModelBody<IoasCtx, IoasEv> {
  const defaults = p.areas === DEFAULT_AREAS;
  const variant = (
    name: keyof typeof VARIANT_DESIGNS,
    description: string,
    violated: string[],
    states: number,
  ) => {
    const d = sizedDesign(name, p.areas);
    return {
      description,
      machine: createIoasMachine(d),
      events: ioasEvents(d),
      label: ioasLabel(d),
      waitingFor: ioasWaits(d),
      unreachable: ioasUnreachable(d),
      properties: ioasWitnesses(d),
      expect: { violated, ...(defaults && { states }) },
    };
  };
  const first = sizedDesign('access-unmap', p.areas);
  return {
    machine: createIoasMachine(first),
    events: ioasEvents(first),
    label: ioasLabel(first),
    waitingFor: ioasWaits(first),
    invariants: inv.ioasInvariants,
    calls: IOAS_CALLS,
    footprints: IOAS_FOOTPRINTS,
    view: { forget: [forgetResults] },
    variants: {
      'access-unmap': variant(
        'access-unmap',
        'MAP and MAP_FILE into one IOAS with a domain, UNMAP racing a compliant access that pins and unpins',
        [],
        655,
      ),
      'access-unmap-noncompliant': variant(
        'access-unmap-noncompliant',
        'the access ignores the unmap callback: UNMAP retries, then WARNs and returns EDEADLOCK',
        ['noUnmapRetryWarn'],
        163,
      ),
      'copy-lifecycle': variant(
        'copy-lifecycle',
        'IOAS 2 allocated and destroyed around a COPY that shares IOAS 1 pages; a child takes them with CHANGE_PROCESS',
        [],
        21536,
      ),
      'change-process': variant(
        'change-process',
        'USER accounting: MAP_FILE and a user-VA MAP; the VMM may exec, a child may CHANGE_PROCESS and exit',
        ['alwaysPageProvider', 'pinnableHasProvider'],
        44106,
      ),
      'lazy-access': variant(
        'lazy-access',
        'no domain: only the access pins, from the source mm (EFAULT once it is dead) or from the memfd; the VMM may exec',
        ['alwaysPageProvider', 'pinnableHasProvider'],
        2711,
      ),
      'change-process-mm': variant(
        'change-process-mm',
        "MM accounting (U1): CHANGE_PROCESS after the old owner exec'd returns EINVAL but has moved the pages",
        [
          'alwaysPageProvider',
          'pinnableHasProvider',
          'failedChangeIsNoop',
          'lastNpinnedSynced',
          'noChangeProcessUnchargeWarn',
          'accountingConserved',
          'accountingNonNegative',
          'noLockedVmUnderflowWarn',
        ],
        159351,
      ),
      'change-process-none': variant(
        'change-process-none',
        'the VMM keeps CAP_IPC_LOCK, pages are NONE (U2): CHANGE_PROCESS moves the owner but not pinned_vm',
        ['alwaysPageProvider', 'pinnableHasProvider', 'accountingConserved', 'accountingNonNegative'],
        101340,
      ),
      // The fixed designs violate only what `change-process` (USER accounting, no finding) does:
      // the owner of a user-VA map may exit while the pages stay pinned (spec/ioas.md).
      'change-process-mm-fixed': variant(
        'change-process-mm-fixed',
        'change-process-mm on a kernel with the F1 and F2 patches: CHANGE_PROCESS after exec moves the charge and succeeds',
        ['alwaysPageProvider', 'pinnableHasProvider'],
        96_697,
      ),
      'change-process-none-fixed': variant(
        'change-process-none-fixed',
        'change-process-none on a kernel with the F1 and F2 patches: pinned_vm of NONE pages moves with the owner',
        ['alwaysPageProvider', 'pinnableHasProvider'],
        55_865,
      ),
    },
    // Far above the default size's largest variant; each area multiplies the space, so the cap grows.
    bounds: { maxStates: 400_000 * 10 ** Math.max(0, p.areas - DEFAULT_AREAS) },
  };
}

export default defineModel<IoasCtx, IoasEv>({
  id: 'ioas',
  description: 'iommufd IOAS: map, copy, unmap with access notification, accounting, CHANGE_PROCESS',
  params: {
    areas: {
      default: DEFAULT_AREAS,
      min: 2,
      max: 4,
      description:
        'areas mapped into IOAS 1 (MAP_FILE and MAP alternately, all pinned by the access); ' +
        'access-unmap-noncompliant and copy-lifecycle map areas - 1',
    },
  },
  build: body,
});
