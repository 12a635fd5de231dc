// Actors over shim channels: the bookkeeping shared by the qemu and local targets.
//
// Port 1 carries the supervisor, the shim started first (PID 1 in the VM). Every other actor
// is a shim process on its own port: spawned fresh by the supervisor, or forked from another
// actor (inheriting its fds). Each call waits for the reply on the actor's port, then for the
// actor's "vfio-mc-sync <port> <seq>" line in the kernel log, so that every kernel message the
// call printed has arrived; splats between the call's start and that line go into `splat`.
import { extractSplats, type KernelLog, SYNC_MARKER } from '../qemu/kernel-log.ts';
import type { LineChannel } from '../qemu/vm.ts';
import { type Args, encodeRequest, type Outputs, parseShimLine, type ShimLine } from './protocol.ts';

export type CallStatus = 'done' | 'blocked' | 'dead';

export interface CallResult {
  /** done: the shim answered; blocked: no answer within the timeout; dead: the target died */
  status: CallStatus;
  seq: number;
  /** the syscall's return value (>= 0) or -errno; null when blocked or dead */
  ret: number | null;
  /** '0' on success, else the errno name (EINVAL, ...); 'BLOCKED' or 'TARGET_DEAD' otherwise */
  errno: string;
  out: Outputs;
  /** WARN / BUG / lockdep / oops text printed while the call ran */
  splat?: string;
}

export interface CallOptions {
  /** report the call as blocked after this long (default: the target's callTimeoutMs) */
  timeoutMs?: number;
}

export interface Transport {
  readonly log: KernelLog;
  readonly ports: number;
  channel(port: number): LineChannel;
  /** resolves with a description when the target dies (QEMU exit, panic, supervisor exit) */
  readonly died: Promise<string>;
  stop(): Promise<void>;
}

interface Pending {
  seq: number;
  op: string;
  logStart: number;
  /** resolved with the shim's answer, or with undefined when the target dies */
  answer: Promise<ShimLine | undefined>;
  settle: (line: ShimLine | undefined) => void;
  /** the full result once known (a blocked call keeps running) */
  result?: Promise<CallResult>;
}

interface ActorState {
  name: string;
  port: number;
  pid: number;
  nextSeq: number;
  pending?: Pending;
  /** The full result of the last call reported blocked, kept for settle() once it finished. */
  late?: Promise<CallResult>;
  exited: boolean;
}

export class TargetDeadError extends Error {
  constructor(reason: string) {
    super(`the target is dead: ${reason}`);
    this.name = 'TargetDeadError';
  }
}

const SUPERVISOR = '#supervisor';
const SYNC_TIMEOUT_MS = 10_000;

export class Session {
  private actors = new Map<string, ActorState>();
  private byPort = new Map<number, ActorState>();
  private helloWaiters = new Map<number, (hello: Extract<ShimLine, { kind: 'hello' }>) => void>();
  private spawning = new Map<string, Promise<ActorState>>();
  private deathReason: string | undefined;
  private supervisorReady: Promise<void>;

  constructor(
    readonly transport: Transport,
    private readonly callTimeoutMs: number,
  ) {
    for (let p = 1; p <= transport.ports; p++) {
      const port = p;
      transport.channel(port).onLine((line) => this.onLine(port, line));
    }
    this.supervisorReady = this.awaitHello(1).then((hello) => {
      this.register(SUPERVISOR, 1, hello.pid);
    });
    void transport.died.then((reason) => this.die(reason));
  }

  get dead(): string | undefined {
    return this.deathReason;
  }

  /** Resolves when the supervisor said hello (the VM booted), rejects on death or timeout. */
  async ready(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the shim did not come up within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    const death = this.transport.died.then((reason) => {
      throw new TargetDeadError(reason);
    });
    try {
      await Promise.race([this.supervisorReady, timeout, death]);
    } finally {
      clearTimeout(timer);
    }
  }

  private die(reason: string): void {
    if (this.deathReason) return;
    this.deathReason = reason;
    for (const a of this.actors.values()) a.pending?.settle(undefined);
  }

  private register(name: string, port: number, pid: number): ActorState {
    const state: ActorState = { name, port, pid, nextSeq: 1, exited: false };
    this.actors.set(name, state);
    this.byPort.set(port, state);
    return state;
  }

  private onLine(port: number, line: string): void {
    const parsed = parseShimLine(line);
    if (!parsed) return;
    if (parsed.kind === 'hello') {
      const waiter = this.helloWaiters.get(port);
      this.helloWaiters.delete(port);
      waiter?.(parsed);
      return;
    }
    const actor = this.byPort.get(port);
    if (actor?.pending && actor.pending.seq === parsed.seq) actor.pending.settle(parsed);
  }

  private awaitHello(port: number): Promise<Extract<ShimLine, { kind: 'hello' }>> {
    return new Promise((resolve) => this.helloWaiters.set(port, resolve));
  }

  private freePort(): number {
    for (let p = 2; p <= this.transport.ports; p++) {
      if (!this.byPort.has(p) && !this.helloWaiters.has(p)) return p;
    }
    throw new Error(
      `all ${this.transport.ports - 1} actor ports are in use; open the target with more ports`,
    );
  }

  private checkAlive(): void {
    if (this.deathReason) throw new TargetDeadError(this.deathReason);
  }

  /** The actor's state, spawning a fresh shim process through the supervisor on first use. */
  private async ensureActor(name: string): Promise<ActorState> {
    const known = this.actors.get(name);
    if (known) {
      if (known.exited) throw new Error(`actor ${name} has exited`);
      return known;
    }
    const inFlight = this.spawning.get(name);
    if (inFlight) return inFlight;
    const spawn = (async () => {
      await this.supervisorReady;
      const port = this.freePort();
      const hello = this.awaitHello(port);
      const r = await this.rawCall(this.actors.get(SUPERVISOR)!, 'spawn', { port }, this.callTimeoutMs);
      if (r.status !== 'done' || r.errno !== '0')
        throw new Error(`spawning actor ${name} failed: ${r.errno}`);
      const h = await this.withDeath(hello);
      return this.register(name, port, h.pid);
    })();
    this.spawning.set(name, spawn);
    try {
      return await spawn;
    } finally {
      this.spawning.delete(name);
    }
  }

  private async withDeath<T>(p: Promise<T>): Promise<T> {
    return Promise.race([
      p,
      this.transport.died.then((reason): never => {
        throw new TargetDeadError(reason);
      }),
    ]);
  }

  pidOf(name: string): number | undefined {
    return this.actors.get(name)?.pid;
  }

  actorNames(): string[] {
    return [...this.actors.keys()].filter((n) => n !== SUPERVISOR);
  }

  /**
   * Sends one request and builds its result: reply + sync marker, or 'blocked' after timeoutMs
   * (the call keeps running; settle() waits for it), or 'dead'.
   */
  private rawCall(actor: ActorState, op: string, args: Args, timeoutMs: number): Promise<CallResult> {
    this.checkAlive();
    if (actor.pending) {
      throw new Error(`actor ${actor.name} is still in call #${actor.pending.seq} (${actor.pending.op})`);
    }
    const seq = actor.nextSeq++;
    const line = encodeRequest(seq, op, args);
    let settle!: (l: ShimLine | undefined) => void;
    const answer = new Promise<ShimLine | undefined>((resolve) => {
      settle = resolve;
    });
    const pending: Pending = { seq, op, logStart: this.transport.log.length, answer, settle };
    actor.pending = pending;
    pending.result = this.finish(actor, pending);
    // a refusal after the call was reported blocked must not be an unhandled rejection
    pending.result.catch(() => undefined);
    this.transport.channel(actor.port).send(line);
    let timer: NodeJS.Timeout | undefined;
    const blocked = new Promise<CallResult>((resolve) => {
      timer = setTimeout(() => {
        actor.late = pending.result;
        resolve({
          status: 'blocked',
          seq,
          ret: null,
          errno: 'BLOCKED',
          out: {},
          splat: extractSplats(this.transport.log.slice(pending.logStart)),
        });
      }, timeoutMs);
    });
    return Promise.race([pending.result, blocked]).finally(() => clearTimeout(timer));
  }

  /** Completes a call from its answer: waits for the sync marker and cuts the splat out of the log. */
  private async finish(actor: ActorState, pending: Pending): Promise<CallResult> {
    const reply = await pending.answer;
    const log = this.transport.log;
    if (reply === undefined) {
      actor.pending = undefined;
      return {
        status: 'dead',
        seq: pending.seq,
        ret: null,
        errno: 'TARGET_DEAD',
        out: {},
        splat: extractSplats(log.slice(pending.logStart)) ?? log.slice(-40).join('\n'),
      };
    }
    if (reply.kind === 'proto_error') {
      actor.pending = undefined;
      throw new Error(`shim refused ${pending.op} for actor ${actor.name}: ${reply.message}`);
    }
    if (reply.kind !== 'reply') throw new Error(`unexpected shim line for ${pending.op}`);
    const marker = new RegExp(`vfio-mc-sync ${actor.port} ${pending.seq}\\s*$`);
    const end = await log.waitFor(marker, pending.logStart, SYNC_TIMEOUT_MS);
    actor.pending = undefined;
    const lines = log.slice(pending.logStart, end ?? log.length).filter((l) => !SYNC_MARKER.test(l));
    const splat = extractSplats(lines);
    return {
      status: 'done',
      seq: pending.seq,
      ret: reply.ret,
      errno: reply.errno,
      out: reply.out,
      ...(splat ? { splat } : {}),
    };
  }

  /** One uAPI step of actor `name`; fork, exec, exit and proc_status get their bookkeeping here. */
  async call(name: string, op: string, args: Args = {}, opts: CallOptions = {}): Promise<CallResult> {
    this.checkAlive();
    if (name.startsWith('#')) throw new Error(`actor names may not start with '#': ${name}`);
    const timeoutMs = opts.timeoutMs ?? this.callTimeoutMs;
    const actor = await this.ensureActor(name);
    switch (op) {
      case 'fork':
        return this.fork(actor, args, timeoutMs);
      case 'exit':
        return this.exit(actor, args, timeoutMs);
      case 'proc_status':
        return this.rawCall(actor, op, this.resolvePid(args), timeoutMs);
      case 'spawn':
      case 'wait_gone':
        throw new Error(`${op} is internal to the target; use target.actor(name) to make actors`);
      default:
        return this.rawCall(actor, op, args, timeoutMs);
    }
  }

  /** proc_status { actor: 'name' } reads that actor's /proc/<pid>/status. */
  private resolvePid(args: Args): Args {
    const { actor: other, ...rest } = args;
    if (other === undefined) return rest;
    const pid = this.pidOf(String(other));
    if (pid === undefined) throw new Error(`proc_status: unknown actor ${String(other)}`);
    return { ...rest, pid };
  }

  /** fork { child: 'name' }: the child becomes a new actor on a free port, holding copies of every fd. */
  private async fork(parent: ActorState, args: Args, timeoutMs: number): Promise<CallResult> {
    const child = args.child;
    if (typeof child !== 'string' || child.length === 0)
      throw new Error('fork needs { child: "<new actor name>" }');
    if (this.actors.has(child)) throw new Error(`fork: actor ${child} already exists`);
    const port = this.freePort();
    const hello = this.awaitHello(port);
    const r = await this.rawCall(parent, 'fork', { port }, timeoutMs);
    if (r.status === 'done' && r.errno === '0') {
      const h = await this.withDeath(hello);
      this.register(child, port, h.pid);
    } else {
      this.helloWaiters.delete(port);
    }
    return r;
  }

  /** exit { code }: after the reply, waits until the process is gone (its mm torn down). */
  private async exit(actor: ActorState, args: Args, timeoutMs: number): Promise<CallResult> {
    const r = await this.rawCall(actor, 'exit', args, timeoutMs);
    if (r.status !== 'done') return r;
    actor.exited = true;
    this.byPort.delete(actor.port);
    const sup = this.actors.get(SUPERVISOR)!;
    const gone = await this.rawCall(
      sup,
      'wait_gone',
      { pid: actor.pid, timeout_ms: timeoutMs },
      timeoutMs + 5000,
    );
    if (gone.errno !== '0')
      throw new Error(`actor ${actor.name} (pid ${actor.pid}) did not go away: ${gone.errno}`);
    return r;
  }

  /**
   * Makes the supervisor (PID 1 in the VM) exit: the kernel panics with "Attempted to kill
   * init!" (kernel/exit.c:do_exit) and the target dies. Exists to test death handling.
   */
  async killInit(): Promise<string> {
    await this.supervisorReady;
    const sup = this.actors.get(SUPERVISOR)!;
    await this.rawCall(sup, 'exit', { code: 1 }, this.callTimeoutMs);
    return this.transport.died;
  }

  /** The late result of the actor's call that was reported blocked. */
  async settle(name: string, timeoutMs = this.callTimeoutMs): Promise<CallResult> {
    const actor = this.actors.get(name);
    // the call reported blocked may have finished since: its result is kept in `late`
    const result = actor?.pending?.result ?? actor?.late;
    if (!actor || !result) throw new Error(`actor ${name} has no call in flight`);
    let timer: NodeJS.Timeout | undefined;
    const blocked = new Promise<CallResult>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({ status: 'blocked', seq: actor.pending?.seq ?? 0, ret: null, errno: 'BLOCKED', out: {} }),
        timeoutMs,
      );
    });
    return Promise.race([result, blocked]).finally(() => clearTimeout(timer));
  }
}
