// openTarget(): a running kernel with iommufd, its selftest mock, the VFIO type1 container and
// the mtty sample, plus a shim inside it that performs uAPI calls for named actors.
//
//   const t = await openTarget({ kind: 'qemu' });
//   const a = t.actor('vmm');
//   const { errno, out } = await a.call('open', { path: '/dev/iommu' });   // errno '0', out.fd
//   await t.close();
//
// Ops and their arguments are those of conformance/shim/vfio-mc-shim.c (the rows of its op
// table ops[]; `vfio-mc-shim --ops`, shim/table.ts, conformance/README.md). Flags and extension ids may be given by name
// ('READ|WRITE', 'VFIO_UPDATE_VADDR'); the shim resolves them from the kernel's uapi headers.
import {
  hostFacts,
  type LocalTargetOptions,
  localPrerequisitesMissing,
  startLocalTransport,
  startShimOnHost,
} from './target/local.ts';
import type { Args, OutValue } from './target/protocol.ts';
import { type QemuTargetOptions, startQemuTransport } from './target/qemu.ts';
import {
  type CallOptions,
  type CallResult,
  Session,
  TargetDeadError,
  type Transport,
} from './target/session.ts';

export type { Args, CallOptions, CallResult, LocalTargetOptions, QemuTargetOptions };
export { hostFacts, localPrerequisitesMissing, TargetDeadError };

export type TargetOptions = QemuTargetOptions | LocalTargetOptions;

export interface Actor {
  readonly name: string;
  /** Runs one op; resolves with the result (status 'blocked' after the timeout, 'dead' if the target died). */
  call(op: string, args?: Args, opts?: CallOptions): Promise<CallResult>;
  /** The late result of this actor's call that was reported blocked. */
  settle(timeoutMs?: number): Promise<CallResult>;
  /** The actor's pid once it exists. */
  readonly pid: number | undefined;
}

export interface Target {
  readonly kind: TargetOptions['kind'];
  /** milliseconds from starting QEMU (or the local shim) to the shim's first hello */
  readonly bootMs: number;
  /** undefined while alive, else why the target died (kernel panic, QEMU exit) */
  readonly deathReason: string | undefined;
  actor(name: string): Actor;
  /** The kernel log captured so far (serial console; local: dmesg --follow-new). */
  log(): string[];
  /**
   * Makes the guest's PID 1 (the shim supervisor) exit, so the kernel panics and the target
   * dies; resolves with the death reason. For testing how a dead target is reported.
   */
  killInit(): Promise<string>;
  /** Stops the target and boots a fresh one; every actor, fd and mapping is gone. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_CALL_TIMEOUT_MS = 30_000;

type Starter = (opts: TargetOptions) => Promise<Transport>;

const defaultStarter: Starter = (opts) => {
  if (opts.kind === 'qemu') return startQemuTransport(opts);
  if (opts.kind === 'local') return startLocalTransport(opts);
  throw new Error(
    `unknown target kind ${JSON.stringify((opts as { kind: unknown }).kind)}; use 'qemu' or 'local'`,
  );
};

async function start(opts: TargetOptions, starter: Starter): Promise<{ session: Session; bootMs: number }> {
  const started = Date.now();
  const transport = await starter(opts);
  const session = new Session(transport, opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  try {
    await session.ready(opts.kind === 'qemu' ? (opts.bootTimeoutMs ?? 60_000) : 10_000);
  } catch (e) {
    await transport.stop();
    const tail = transport.log.lines.slice(-30).join('\n');
    throw new Error(`${(e as Error).message}${tail ? `\nlast console lines:\n${tail}` : ''}`);
  }
  return { session, bootMs: Date.now() - started };
}

export function openTarget(opts: TargetOptions): Promise<Target> {
  return openWith(opts, defaultStarter);
}

/** The local target's plumbing without its root and /dev/iommu checks (tests only). */
export function openHostShimForTest(opts: LocalTargetOptions): Promise<Target> {
  return openWith(opts, (o) => startShimOnHost(o as LocalTargetOptions));
}

async function openWith(opts: TargetOptions, starter: Starter): Promise<Target> {
  let current = await start(opts, starter);
  let closed = false;
  const live = () => {
    if (closed) throw new Error('the target is closed');
    return current.session;
  };
  return {
    kind: opts.kind,
    get bootMs() {
      return current.bootMs;
    },
    get deathReason() {
      return current.session.dead;
    },
    actor(name: string): Actor {
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad actor name ${JSON.stringify(name)}`);
      return {
        name,
        call: (op, args, callOpts) => live().call(name, op, args, callOpts),
        settle: (timeoutMs) => live().settle(name, timeoutMs),
        get pid() {
          return current.session.pidOf(name);
        },
      };
    },
    log: () => [...current.session.transport.log.lines],
    killInit: () => live().killInit(),
    async restart() {
      live();
      await current.session.transport.stop();
      current = await start(opts, starter);
    },
    async close() {
      if (closed) return;
      closed = true;
      await current.session.transport.stop();
    },
  };
}

/** A numeric output of a call, or an error naming the op's missing output. */
export function outNum(r: CallResult, key: string): number {
  const v: OutValue | undefined = r.out[key];
  if (typeof v !== 'number') {
    throw new Error(
      `call #${r.seq} (errno ${r.errno}) has no numeric output ${key}: ${JSON.stringify(r.out)}`,
    );
  }
  return v;
}
