/**
 * The exec-handoff model's state (spec/exec-handoff.md): the kernel objects
 * (iommufd areas and pages, or a type1 container), the processes' address
 * spaces and reference counts, the signals the application's processes pass
 * each other, and the history variable the owner-change invariants read.
 * The designs (seed proposals and QEMU's cpr flows) are parameters of one
 * factory; machines/handoff/seed.ts and qemu.ts give their protocols.
 */
import type { ChangeImpl, DraftFlaws } from '../kernel/iommufd-change-process.ts';
import { type Iommufd, insertArea, update } from '../kernel/iommufd-ioas.ts';
import { mappings, type OwnerLog, ownerLog } from '../kernel/iommufd-owners.ts';
import { type AccountMode, allocPages, type KernelFix, pinAll } from '../kernel/iommufd-pages.ts';
import { RWSEM_FREE } from '../kernel/locks.ts';
import type { AddressSpaces } from '../kernel/mm.ts';
import {
  type Caller,
  type DmaOwnerReading,
  type Kstate,
  mapDma,
  newType1,
  type Ret,
  type Type1,
  type Type1Design,
  VA0,
} from '../kernel/type1.ts';

export type Actor = 'vmm' | 'holder' | 'image';
export const ACTORS: readonly Actor[] = ['vmm', 'holder', 'image'];

/** Mappings of one page each: two by default (the model parameter `maps`, HandoffDesign.maps). */
export const NMAPS = 2;
/**
 * RLIMIT_MEMLOCK in pages for N mappings. `ok` (2×N) leaves room for every
 * charge, USER mode's double charge (U3) included; `low` (N−1) fits no charge
 * of the N pinned pages; `tight` (N+1) is a deployment sized for the guest
 * with some headroom (libvirt: guest memory + 1 GiB), below U3's 2×N.
 */
export const rlimits = (n: number) => ({ ok: 2 * n, low: n - 1, tight: n + 1 }) as const;
/** The RLIMIT_MEMLOCK values at the default size. */
export const RLIMIT = rlimits(NMAPS);

/** The VA where the image maps the guest memory when it does not reuse the old one. */
export const VA_NEW = 'B';
/** The guest memory object (the memfd), and whatever else an address space maps. */
export const GUEST = 'G';
export const OTHER = 'X';

/** What the uninitialised slot of the draft's all_npinned[] may hold: nothing, a page, more than any rlimit. */
export const junkOf = (n: number): readonly number[] => [0, 1, rlimits(n).ok + 1];

/** Type1 rules of the in-tree kernel the type1 designs run on. */
export const T1_73: Type1Design = { kernel: '7.3', notify: 'if-pinned', maxRetries: 10 };

export type Protocol = 'vaddr' | 'changeMm' | 'staged' | 'array' | 'changeProcess' | 'qemu';

/** QEMU's live-update modes (migration/cpr-exec.c, cpr-transfer.c) and container back ends. */
export interface QemuFlow {
  readonly mode: 'cpr-exec' | 'cpr-transfer';
  readonly backend: 'iommufd' | 'legacy';
}

export interface HandoffDesign {
  readonly protocol: Protocol;
  readonly holder: boolean;
  /** iommufd designs. */
  readonly impl?: ChangeImpl;
  /** The draft's flaws switched on (machines/kernel/iommufd-change-process.ts); `junkSlot` takes the event's junk. */
  readonly flaws?: Omit<DraftFlaws, 'junk'> & { readonly junkSlot?: AccountMode };
  readonly ctxMode?: 'user' | 'mm';
  /** The mapper has CAP_IPC_LOCK (runs as root): iommufd pages are NONE; type1 skips the rlimit check. */
  readonly cap?: boolean;
  /** iommufd designs: MAP_FILE of a memfd, or MAP of a user VA (the draft predates MAP_FILE). */
  readonly mapKind?: 'user' | 'file';
  /** iommufd designs: the patched kernel's fixes (conformance/kernel/patches/, spec/findings/). */
  readonly fixes?: readonly KernelFix[];
  /** staged and array designs: how VFIO_CHANGE_DMA_OWNER is read (kernel/type1.ts DmaOwnerReading). */
  readonly reading?: DmaOwnerReading;
  /** Assumption: the image may raise its RLIMIT_MEMLOCK after exec (setrlimit, or its manager's prlimit). */
  readonly setrlimit?: boolean;
  /** Assumption: the holder may be killed (SIGKILL, the OOM killer) while it owns the mappings. */
  readonly holderMayDie?: boolean;
  /** QEMU designs. */
  readonly qemu?: QemuFlow;
  /** RLIMIT_MEMLOCK of every process at the start (default `ok`). */
  readonly memlock?: keyof typeof RLIMIT;
  /** How many one-page mappings the VMM has made (the parameter `maps`; default NMAPS). */
  readonly maps?: number;
}

/** The design's number of mappings. */
export const mapsOf = (d: HandoffDesign): number => d.maps ?? NMAPS;

export interface Signals {
  /** Where the VMM (the old QEMU) is; the other actors wait on it. */
  readonly vmm: 'start' | 'invalidated' | 'forked' | 'saved' | 'execed' | 'execFailed' | 'resumed' | 'exited';
  /** The holder's owner change returned 0 (the holder signals the parent). */
  readonly holderTook: boolean;
  /** The image: its probe ran; its last owner change failed; it owns everything (it signals the holder). */
  readonly image: 'none' | 'probed' | 'failed' | 'done';
  /** QEMU added a CPR migration blocker (a failed CHANGE_PROCESS probe at connect). */
  readonly cprBlocked: boolean;
}

export interface HandoffCtx {
  readonly ret: Readonly<Record<Actor, string | null>>;
  /** iommufd state (areas and pages for the iommufd designs), the processes, mms and their reference counts. */
  readonly k: Iommufd;
  /** The type1 container (type1 designs). */
  readonly t1: Type1 | null;
  /** What each mm maps at the VAs the protocols use. */
  readonly as: AddressSpaces;
  readonly sig: Signals;
  /** Processes that have not exited (pids, sorted): the owners of an mm_users reference each. */
  readonly running: readonly string[];
  /** How many mappings the application unmapped on purpose (QEMU's later unmap). */
  readonly unmapped: number;
  readonly log: OwnerLog | null;
}

export interface HandoffEv {
  readonly type: string;
  /** VmmExec of a seed design: the image's RLIMIT_MEMLOCK. */
  readonly rlimit?: 'ok' | 'low';
  /** Which dma or area. */
  readonly dma?: number;
  /** A VA the call passes (MAP_DMA(VADDR), the staged or array vaddrs) or where the image maps guest memory. */
  readonly va?: string;
  /** ...DmaOwnerArray: whether the array carries every dma. */
  readonly complete?: boolean;
  /** The draft's CHANGE_PROCESS: what its uninitialised all_npinned[] slot held. */
  readonly junk?: number;
}

// ---------------------------------------------------------------- processes

/** The pid an actor runs as: the image is the VMM's pid after exec (cpr-exec), or a second QEMU (cpr-transfer). */
export const pidOf = (d: HandoffDesign, a: Actor): string =>
  a === 'holder' ? 'holder' : a === 'image' && d.qemu?.mode === 'cpr-transfer' ? 'qemu2' : 'vmm';

export const isRunning = (c: HandoffCtx, pid: string): boolean => c.running.includes(pid);

/** current->mm and the limit its charges are checked against (RLIMIT_MEMLOCK, or CAP_IPC_LOCK). */
export function callerOf(d: HandoffDesign, c: HandoffCtx, a: Actor): Caller {
  const pid = pidOf(d, a);
  const p = c.k.procs[pid];
  return { pid, mm: p.mm, limit: { rlimit: p.rlimit, capIpcLock: p.cap } };
}

/** get_task_mm(task): the mm of a running process, null once it exited. */
export const taskMm =
  (c: HandoffCtx) =>
  (pid: string): string | null =>
    isRunning(c, pid) ? c.k.procs[pid].mm : null;

// ---------------------------------------------------------------- initial state

const newMm = { alive: true, lockedVm: 0, pinnedVm: 0 };

export function initialContext(d: HandoffDesign): HandoffCtx {
  const n = mapsOf(d);
  const rlimit = rlimits(n)[d.memlock ?? 'ok'];
  const proc = { uid: 'u', rlimit, cap: d.cap ?? false };
  const transfer = d.qemu?.mode === 'cpr-transfer';
  const k0: Iommufd = {
    procs: { vmm: { mm: 'mm0', ...proc }, ...(transfer && { qemu2: { mm: 'mmB', ...proc } }) },
    mms: { mm0: newMm, ...(transfer && { mmB: newMm }) },
    users: { u: 0 },
    pages: [],
    warn: [],
    ctxMode: d.ctxMode ?? 'user',
    domain: true,
    ioas: [{ id: 1, live: true, users: 1, iova: RWSEM_FREE }],
    areas: [],
    creation: RWSEM_FREE,
    access: null,
    ...(d.fixes && d.fixes.length > 0 && { fixes: d.fixes }),
    mmRefs: { mm0: { users: 1, count: 0 }, ...(transfer && { mmB: { users: 1, count: 0 } }) },
  };
  const base = {
    ret: { vmm: null, holder: null, image: null },
    as: { mm0: { [VA0]: GUEST }, ...(transfer && { mmB: {} }) },
    sig: { vmm: 'start', holderTook: false, image: 'none', cprBlocked: false },
    running: transfer ? ['qemu2', 'vmm'] : ['vmm'],
    unmapped: 0,
    log: null,
  } as const;
  if (usesIommufd(d)) {
    // IOMMU_IOAS_MAP(_FILE) into an IOAS with a domain: pinned and charged at map time.
    const k = update(k0, (k) => {
      for (let slot = 0; slot < n; slot++) {
        const id = allocPages(k, d.mapKind ?? 'file', 'vmm', k.ctxMode, 1);
        insertArea(k, { ioas: 1, slot, pages: id, busy: false, filled: true, accesses: 0, prevent: false });
        pinAll(k, k.pages[id]!, 'mm0');
      }
    });
    return { ...base, k, t1: null };
  }
  // VFIO_IOMMU_MAP_DMA with a domain: pinned from current->mm and charged to its locked_vm.
  let ks: Kstate = { t1: newType1(n, { emulated: [], devices: [], domain: true }), mms: k0.mms };
  for (let i = 0; i < n; i++) ks = mapDma(ks, i, 'mm0', VA0).k;
  // V1 2/8: the first task to map becomes iommu->task.
  const v1 = d.protocol === 'staged' || d.protocol === 'array';
  return { ...base, k: { ...k0, mms: ks.mms }, t1: { ...ks.t1, task: v1 ? 'vmm' : null } };
}

export const usesIommufd = (d: HandoffDesign): boolean =>
  d.protocol === 'changeProcess' || (d.protocol === 'qemu' && d.qemu?.backend === 'iommufd');

// ---------------------------------------------------------------- helpers for steps

export const setRet = (c: HandoffCtx, a: Actor, r: Ret | null): HandoffCtx => ({
  ...c,
  ret: { ...c.ret, [a]: r ?? '0' },
});

export const setSig = (c: HandoffCtx, s: Partial<Signals>): HandoffCtx => ({ ...c, sig: { ...c.sig, ...s } });

export const sorted = (xs: readonly string[]): string[] => [...xs].sort();

/** The kernel state an owner-change body works on: a private copy of the iommufd state and the container. */
export type Body = (k: Iommufd, t1: Type1 | null) => { t1: Type1 | null; err: Ret | null };

/**
 * Run an owner-change call on a private copy of the kernel state and record
 * it in the history variable the atomicity invariants read.
 */
export function ownerChange(
  d: HandoffDesign,
  c: HandoffCtx,
  a: Actor,
  call: string,
  body: Body,
  only?: number,
): { ctx: HandoffCtx; err: Ret | null } {
  let t1 = c.t1;
  let err: Ret | null = null;
  const k = update(c.k, (k) => {
    const r = body(k, c.t1);
    t1 = r.t1;
    err = r.err;
  });
  const after: HandoffCtx = { ...c, k, t1 };
  // Every mapping, or the one dma a MAP_DMA(VADDR) names.
  const targets = only === undefined ? mappings(c).map((_, i) => i) : [only];
  const log = ownerLog(c, after, {
    by: a,
    call,
    ret: err ?? '0',
    callerMm: c.k.procs[pidOf(d, a)].mm,
    targets,
  });
  return { ctx: setRet({ ...after, log }, a, err), err };
}

/** Run a type1 kernel function on the container and the mms of a private copy of the iommufd state. */
export function onType1(
  k: Iommufd,
  t1: Type1 | null,
  f: (ks: Kstate) => { k: Kstate; ret: Ret },
): { t1: Type1 | null; err: Ret | null } {
  if (t1 === null) throw new Error('a type1 call in a design without a container');
  const r = f({ t1, mms: k.mms });
  k.mms = r.k.mms;
  return { t1: r.k.t1, err: r.ret === '0' ? null : r.ret };
}

/** A type1 kernel function on a private copy of the context: the new context and the call's errno. */
export function withType1(
  c: HandoffCtx,
  f: (ks: Kstate) => { k: Kstate; ret: Ret },
): { ctx: HandoffCtx; err: Ret | null } {
  let r: { t1: Type1 | null; err: Ret | null } = { t1: c.t1, err: null };
  const k = update(c.k, (k) => {
    r = onType1(k, c.t1, f);
  });
  return { ctx: { ...c, k, t1: r.t1 }, err: r.err };
}
