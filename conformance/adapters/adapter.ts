/**
 * The adapter contract: how one model's events become shim operations on a
 * real kernel. An adapter maps EVERY event type of its model (ts-pattern's
 * `.exhaustive()` over the adapter's event-type union, and a unit test that
 * the union equals the event types the machine handles), so a new event type
 * without a mapping fails to compile or fails the tests.
 *
 * A mapping is one of:
 * - `internal`: a kernel-internal or driver step (lock window, callback): not observable, skipped;
 * - `absent`: a driver step the target's driver never takes (mtty pins no pages): the model is
 *   told it does not happen, so the allowed results are those of the runs without it;
 * - `call`: a uAPI call, run through the shim; its errno is compared with the model's.
 */
import type { Args, CallOptions, CallResult } from '../target.ts';

/** The part of a Target a replay uses (a fake one in the unit tests). */
export interface ReplayTarget {
  actor(name: string): {
    call(op: string, args?: Args, opts?: CallOptions): Promise<CallResult>;
    /** The late result of a call reported blocked (undefined: still blocked after timeoutMs). */
    settle?(timeoutMs?: number): Promise<CallResult | undefined>;
  };
  log(): string[];
  /** Boots a fresh target (after a path left processes stuck in the kernel). */
  restart?(): Promise<void>;
}

/** What the shim reported for a mapped call (the last shim op of the mapping decides). */
export interface Observed {
  readonly status: CallResult['status'];
  /** '0', an errno name, or 'BLOCKED' / 'TARGET_DEAD'. */
  readonly errno: string;
  readonly out: CallResult['out'];
  readonly splat?: string;
  /** fail-nth: whether the injected fault fired in this call. */
  readonly failInjected?: boolean;
}

/** A shim op run by a mapping, kept for the divergence report and the reproducer. */
export interface OpRecord {
  readonly actor: string;
  readonly op: string;
  readonly args: Args;
  readonly errno: string;
  readonly status: CallResult['status'];
  /** The op's outputs (ids, fds, VmPin...), as the shim printed them. */
  readonly out?: Record<string, string | number | number[]>;
}

/** A fixture or mapping step failed where the model assumes success: not a divergence, a setup error. */
export class SetupError extends Error {
  override name = 'SetupError';
}

/** The mapping asks for something this target cannot do (a variant the adapter does not support). */
export class Unreplayable extends Error {
  override name = 'Unreplayable';
}

/**
 * One path's connection to the target: real actor names, the symbol table from model
 * objects (ioas 1, dma 0, the memfd, the access) to the ids and fds the shim returned,
 * and the op log.
 */
export class PathRun {
  readonly sym = new Map<string, number>();
  readonly ops: OpRecord[] = [];
  /** Model actors whose processes exist (spawned by a call, or forked) and have not exited. */
  readonly live = new Set<string>();
  /** fail-nth armed for the next mapped call (set by the runner). */
  failNth: number | undefined;
  /** Timeout of the next mapped call (set by the runner from what the model allows). */
  timeoutMs: number | undefined;
  /**
   * The next mapped call is to stay in flight while the path goes on (the path has it return at
   * no later step): an adapter may widen the kernel window the path describes (a driver delay).
   */
  expectBlocked = false;

  constructor(
    readonly target: ReplayTarget,
    /** Prefix of this path's actor names, unique per path (actors are per-path processes). */
    readonly prefix: string,
    /** The mdev uuids this path may create (allow-listed when the target was opened). */
    readonly uuids: readonly string[],
  ) {}

  /** The shim actor standing for a model actor. */
  actorName(modelActor: string): string {
    return `${this.prefix}-${modelActor}`;
  }

  /** Runs one shim op for a model actor; records it. */
  async op(modelActor: string, op: string, args: Args = {}, opts: CallOptions = {}): Promise<CallResult> {
    const name = this.actorName(modelActor);
    this.live.add(modelActor);
    const r = await this.target.actor(name).call(op, args, opts);
    const out = Object.fromEntries(
      Object.entries(r.out).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]),
    );
    this.ops.push({ actor: name, op, args, errno: r.errno, status: r.status, out });
    if (r.status === 'done' && r.errno === '0') {
      if (op === 'exit') this.live.delete(modelActor);
      if (op === 'fork') this.live.add(String(args.child).slice(this.prefix.length + 1));
    }
    return r;
  }

  /** A fixture op that must succeed; anything else is a SetupError naming the op. */
  async must(modelActor: string, op: string, args: Args = {}): Promise<CallResult> {
    const r = await this.op(modelActor, op, args);
    if (r.status !== 'done' || r.errno !== '0' || r.splat) {
      throw new SetupError(
        `fixture step ${op} ${JSON.stringify(args)} of ${modelActor} gave ${r.status} ${r.errno}${r.splat ? ` with a splat:\n${r.splat}` : ''}`,
      );
    }
    return r;
  }

  /** The uAPI call a mapping stands for: fail-nth and the timeout apply to it only. */
  async call(modelActor: string, op: string, args: Args = {}): Promise<Observed> {
    let failArmed = false;
    if (this.failNth !== undefined) {
      await this.must(modelActor, 'fail_nth', { n: this.failNth });
      failArmed = true;
      this.failNth = undefined;
    }
    const r = await this.op(modelActor, op, args, this.timeoutMs ? { timeoutMs: this.timeoutMs } : {});
    return {
      status: r.status,
      errno: r.errno,
      out: r.out,
      ...(r.splat && { splat: r.splat }),
      ...(failArmed && { failInjected: Number(r.out.fail_injected) === 1 }),
    };
  }

  /** A numeric output of a fixture op. */
  num(r: CallResult, key: string): number {
    const v = r.out[key];
    if (typeof v !== 'number')
      throw new SetupError(`${key} missing from the shim's answer ${JSON.stringify(r.out)}`);
    return v;
  }

  /** Exit every process of the path still alive (closing its fds), children first. */
  async exitAll(): Promise<void> {
    for (const a of [...this.live].reverse()) await this.op(a, 'exit', { code: 0 }).catch(() => undefined);
  }

  get(key: string): number {
    const v = this.sym.get(key);
    if (v === undefined)
      throw new SetupError(`no real object for model object '${key}' (fixture incomplete)`);
    return v;
  }
}

/** Observed quantities: per model actor, named numbers (e.g. { vmm: { pinKb: 4, lckKb: 0 } }). */
export type Observation = Record<string, Record<string, number>>;

/** What one call observed besides its result, as named numbers (a load: { sigbus: 0, minflt: 1 }). */
export type Facts = Readonly<Record<string, number>>;

/**
 * A call's facts: how to read them from the shim's answer, and what the model predicts for them
 * from the model state the call was made in and the result it returned with. The replay keeps
 * only the model states whose prediction equals what the kernel did; none left is a divergence,
 * as a wrong errno is.
 */
export interface CallFacts {
  readonly observed: (o: Observed) => Facts;
  readonly predicted: (before: any, actor: string, result: string) => Facts;
}

export const sameFacts = (a: Facts, b: Facts): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

export type Mapping =
  | { readonly kind: 'internal' }
  | { readonly kind: 'absent'; readonly why: string }
  | {
      readonly kind: 'call';
      /** The shim ops of the call; the Observed is the call's result. */
      readonly run: (r: PathRun) => Promise<Observed>;
      /**
       * 'errno' compares with the model's context.ret; 'success' for calls whose model
       * records no result (fork, exec, exit, mmap): the call must succeed.
       */
      readonly compare: 'errno' | 'success';
      /** Facts compared besides the result (page faults of a load); a mismatch is a divergence. */
      readonly facts?: CallFacts;
    };

export interface Adapter {
  readonly model: string;
  /** Variants whose fixture this adapter builds. */
  readonly variants: readonly string[];
  /** Every event type of the model (the exhaustive union), checked against the machine in the tests. */
  readonly eventTypes: readonly string[];
  /** Allow-list entries for openTarget, given the uuids the paths will use. */
  allow(uuids: readonly string[]): string[];
  /** How many mdev uuids one path needs. */
  readonly uuidsPerPath: number;
  /** The fixture the model's initial state stands for. */
  setup(r: PathRun, variant: string): Promise<void>;
  /** The mapping of one event (taken by `actor` in the model). */
  map(
    event: { readonly type: string } & Record<string, unknown>,
    actor: string,
    variant: string,
    /** The path's run, when replaying (absent when only the kind is asked). */
    run?: PathRun,
  ): Mapping;
  /**
   * Why the target cannot stand for a model state (context) as far as the call `event`
   * can tell, or null when it can. The replay compares a call only from model states the
   * fixture reproduces; a path that leaves them is reported unreplayable with this reason.
   */
  unfit?(context: any, event: { readonly type: string }, variant: string): string | null;
  /**
   * Quantities the model predicts besides the errno (VmPin/VmLck), read from the target
   * after each compared call; `fits` says whether a model state agrees with them.
   */
  readonly observe?: (r: PathRun) => Promise<Observation>;
  readonly fits?: (context: any, o: Observation, variant: string) => boolean;
  /** What the model predicts for the observed quantities in a state (for the report). */
  readonly predict?: (context: any, o: Observation) => Observation;
  /** Undo the fixture (exit the path's processes, remove its mdevs). Best effort. */
  teardown(r: PathRun, variant: string): Promise<void>;
}

export const PAGE = 4096;

export const call =
  (modelActor: string, op: string, args: (r: PathRun) => Args, after?: (r: PathRun, o: Observed) => void) =>
  async (r: PathRun): Promise<Observed> => {
    const o = await r.call(modelActor, op, args(r));
    if (o.status === 'done' && o.errno === '0') after?.(r, o);
    return o;
  };

/**
 * task_mem prints pinned_vm as an unsigned long: a counter driven below zero (UAPI-FACTS U2)
 * shows as 2^64 - n kB, which the shim's protocol hands over as a bigint. Read it back signed.
 */
const signedKb = (v: unknown): number => (typeof v === 'bigint' ? Number(BigInt.asIntN(64, v)) : Number(v));

/** VmPin/VmLck (fs/proc/task_mmu.c:task_mem) of every live process actor of the path, in kB. */
export async function observeVm(r: PathRun, processes: readonly string[]): Promise<Observation> {
  const out: Observation = {};
  const reader = [...r.live].find((a) => processes.includes(a));
  if (!reader) return out;
  for (const a of processes.filter((x) => r.live.has(x))) {
    const s = await r.must(reader, 'proc_status', { actor: r.actorName(a) });
    out[a] = { pinKb: signedKb(s.out.vm_pin_kb), lckKb: signedKb(s.out.vm_lck_kb) };
  }
  return out;
}

/** The iommufd models' prediction: mms[procs[a].mm].{pinnedVm, lockedVm} in pages. */
export function iommufdVm(
  context: any,
  o: Observation,
  procOf: (a: string) => string = (a) => a,
): Observation {
  const out: Observation = {};
  for (const a of Object.keys(o)) {
    const mm = context.k.mms[context.k.procs[procOf(a)]?.mm];
    out[a] = { pinKb: (mm?.pinnedVm ?? 0) * (PAGE / 1024), lckKb: (mm?.lockedVm ?? 0) * (PAGE / 1024) };
  }
  return out;
}

export const sameObservation = (a: Observation, b: Observation) => JSON.stringify(a) === JSON.stringify(b);
