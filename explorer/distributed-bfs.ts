/**
 * Breadth-first search over several processes (`vfio-mc explore MODEL
 * --broker redis://HOST:PORT --node I/N`), on one machine or many, with a
 * Redis server between them. Node 0 runs this coordinator and partition 0;
 * every node hosts one partition (distributed-node.ts). The levels are those
 * of the threaded search, run by the same code (parallel-bfs.ts runLevels),
 * with commands and answers going through the broker instead of
 * worker_threads messages, and successor batches going to their owners'
 * lists (exchange-broker.ts); at the end the partitions' states are gathered
 * in BFS order into one store (parallel-bfs.ts merge), so counts, verdicts
 * and shortest counterexamples are those of a one-process search.
 *
 * Faults never become a verdict. A node whose heartbeat expires, a node that
 * reports that its broker connection dropped, or the coordinator's own
 * connection dropping (a broker restart loses the batches in flight) stops
 * the level. With `--checkpoint FILE` the coordinator starts a new session,
 * waits for every node to join it again (a dead one restarted by hand or by
 * its scheduler) and resumes from the last checkpoint; without one, or after
 * MAX_RESUMES faults, it stops with a DistributedFault: a partial report
 * naming the node and what was lost.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import type { Progress, SearchOutcome } from './bfs.ts';
import { ALIVE_MS, BrokerLink, type BrokerTarget, SESSION_MS } from './broker-link.ts';
import { type Checkpoint, readCheckpoint } from './checkpoint.ts';
import { Assembler, COORDINATOR, Kind, openEnvelope, partsOf } from './exchange-broker.ts';
import { dataBudget } from './bfs.ts';
import { type Hello, helloOf, type NodeCommand, NodeHost } from './distributed-node.ts';
import { ModelError, type ResolvedVariant } from './model.ts';
import { merge, type ParallelConfig, type PartitionHandle, runLevels } from './parallel-bfs.ts';
import type { Command, LevelReport, PartitionDump } from './worker.ts';

export interface DistributedConfig extends Omit<ParallelConfig, 'workers'> {
  readonly broker: BrokerTarget;
  /** Progress and fault lines for the terminal (standard error). */
  readonly log?: (line: string) => void;
  /** How long to wait for every node to join (at the start and after a fault). @default 10 minutes */
  readonly joinSeconds?: number;
}

/** Faults resumed from a checkpoint before the search gives up. */
export const MAX_RESUMES = 3;

/** A node or the broker failed during a level. */
class NodeFault extends Error {
  override name = 'NodeFault';
  constructor(
    readonly node: number | undefined,
    reason: string,
  ) {
    super(reason);
  }
}

/** What a distributed search that stopped on a fault says: no verdict, and what was lost. */
export interface FaultReport {
  readonly model: string;
  readonly variant: string;
  readonly nodes: number;
  /** The node that failed; absent when the broker itself did. */
  readonly node?: number;
  readonly reason: string;
  /** The level being explored when the fault came; levels before it were complete. */
  readonly level: number;
  readonly states: number;
  readonly transitions: number;
  /** States the failed node owned (lost with it), as of its last report. */
  readonly lostStates?: number;
  /** Properties found violated before the fault, at the depth found (their traces are lost with the run). */
  readonly violatedBefore: { property: string; depth: number }[];
  readonly resumes: number;
  readonly checkpoint?: string;
}

export class DistributedFault extends Error {
  override name = 'DistributedFault';
  constructor(readonly report: FaultReport) {
    super(report.reason);
  }
}

/** The partial report as lines of text. */
export function formatFault(r: FaultReport): string {
  const who = r.node === undefined ? 'the broker' : `node ${r.node} of ${r.nodes}`;
  const lines = [
    `vfio-mc: error: the distributed search lost ${who} during level ${r.level}: ${r.reason}`,
    `  no verdict: the search is incomplete (${r.resumes} resume${r.resumes === 1 ? '' : 's'} from a checkpoint before this)`,
    `  explored before the fault: ${r.states.toLocaleString('en')} states, ${r.transitions.toLocaleString('en')} transitions, levels 0..${r.level - 1} complete`,
    `  lost: ${r.node === undefined ? 'the batches the broker held' : `node ${r.node}'s partition${r.lostStates !== undefined ? ` (${r.lostStates.toLocaleString('en')} states)` : ''} and the batches in flight`} at level ${r.level}`,
  ];
  if (r.violatedBefore.length > 0)
    lines.push(
      `  violated before the fault (traces lost): ${r.violatedBefore.map((v) => `${v.property} at depth ${v.depth}`).join(', ')}`,
    );
  lines.push(
    r.checkpoint
      ? `  resume it: vfio-mc explore --resume ${r.checkpoint} --broker URL --node 0/${r.nodes} (and nodes 1..${r.nodes - 1})`
      : '  next time run node 0 with --checkpoint FILE: a fault then resumes from the last checkpoint',
  );
  return lines.join('\n');
}

/** Node 0's side of the broker: sessions, commands and answers, heartbeats. */
class Coordinator {
  session = '';
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private readonly assembler = new Assembler();
  private readonly hellos = new Map<number, Hello>();
  private fault: NodeFault | undefined;
  private closed = false;
  private running = false;
  private loop: Promise<void> | undefined;
  /** Each node's last level report, and what it has been found to violate. */
  readonly reports = new Map<number, LevelReport>();
  readonly violated = new Map<string, number>();
  progress: Progress = { states: 0, depth: 0, frontier: 0, transitions: 0, seconds: 0 };

  private constructor(
    private readonly link: BrokerLink,
    private readonly target: BrokerTarget,
    private readonly mine: Hello,
    private readonly log: (line: string) => void,
  ) {}

  static async connect(variant: ResolvedVariant, target: BrokerTarget, log: (line: string) => void) {
    const holder: { c?: Coordinator } = {};
    const link = await BrokerLink.connect(target, (why) => holder.c?.failWith(new NodeFault(undefined, why)));
    holder.c = new Coordinator(link, target, helloOf(variant, 0, target.nodes), log);
    return holder.c;
  }

  /** A new session: every node (re)joins it with a fresh partition thread; what the last one held is dropped. */
  async newSession(): Promise<void> {
    const { cmd, keys } = this.link;
    // After a broker restart: once both connections are back, a drop is a new fault.
    await this.link.ready();
    if (this.session !== '') {
      // What the failed session left (batches, answers) is of no use any more.
      const old = this.session;
      const stale = [
        keys.coord(old),
        ...Array.from({ length: this.target.nodes }, (_, i) => keys.in(old, i)),
      ];
      await cmd.del(stale).catch(() => {});
    }
    this.session = randomBytes(6).toString('hex');
    this.fault = undefined;
    this.running = false;
    this.hellos.clear();
    this.assembler.clear();
    await cmd.set(keys.session, this.session, { expiration: { type: 'PX', value: SESSION_MS } });
    for (let i = 0; i < this.target.nodes; i++) {
      await cmd.del(keys.join(i));
      await cmd.rPush(keys.join(i), this.session);
    }
    this.loop ??= this.serve();
  }

  /** Wait until every node has said hello, and check that they all run the same search. */
  async waitForNodes(seconds: number): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    let told = Date.now();
    while (this.hellos.size < this.target.nodes) {
      if (this.fault) throw this.fault;
      if (Date.now() > deadline)
        throw new ModelError(
          `nodes ${this.missing().join(', ')} of ${this.target.nodes} did not join within ${seconds} s ` +
            `(start them: vfio-mc explore MODEL --broker ${this.target.url} --node I/${this.target.nodes})`,
        );
      if (Date.now() - told > 10_000) {
        this.log(
          `waiting for node${this.missing().length > 1 ? 's' : ''} ${this.missing().join(', ')} to join`,
        );
        told = Date.now();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const h of this.hellos.values()) {
      const differs = (['tool', 'model', 'variant', 'digest', 'nodes'] as const).filter(
        (k) => h[k] !== this.mine[k],
      );
      if (JSON.stringify(h.params) !== JSON.stringify(this.mine.params)) differs.push('params' as never);
      if (differs.length > 0)
        throw new ModelError(
          `node ${h.node} (${h.host}, pid ${h.pid}) runs another search: ${differs
            .map((k) => `${k} ${JSON.stringify(h[k])} where node 0 has ${JSON.stringify(this.mine[k])}`)
            .join('; ')}`,
        );
    }
    this.running = true;
  }

  private missing(): number[] {
    return Array.from({ length: this.target.nodes }, (_, i) => i).filter((i) => !this.hellos.has(i));
  }

  /** A handle on node i's partition, for runLevels. */
  remote(i: number): PartitionHandle {
    return { ask: <T>(c: Command) => this.ask<T>(i, c) };
  }

  ask<T>(node: number, c: NodeCommand): Promise<T> {
    if (this.fault) return Promise.reject(this.fault);
    const id = this.nextId++;
    const answer = new Promise<T>((resolve, reject) =>
      this.pending.set(`${node}:${id}`, { resolve, reject }),
    );
    answer.catch(() => {}); // a fault may reject it while its command is still being pushed
    const key = this.link.keys.in(this.session, node);
    return (async () => {
      try {
        for (const p of partsOf(Kind.command, COORDINATOR, id, c)) await this.link.pushBounded(key, p);
      } catch (e) {
        // a command the broker did not take: the connection dropped (reported by the link too)
        this.failWith(new NodeFault(undefined, `the broker did not take a command: ${(e as Error).message}`));
        throw this.fault;
      }
      const r = await answer;
      if (c.cmd === 'seed' || c.cmd === 'drain') this.note(node, r as LevelReport, c.cmd === 'seed');
      return r;
    })();
  }

  /** A level report: states owned, and violations at the depth they were found (a deadlock, one level up). */
  private note(node: number, r: LevelReport, seed: boolean): void {
    this.reports.set(node, r);
    const depth = seed ? 0 : this.progress.depth + 1;
    for (const name of Object.keys(r.violations))
      if (!this.violated.has(name)) this.violated.set(name, depth);
    if (r.deadlock >= 0 && !this.violated.has('deadlock')) this.violated.set('deadlock', depth - 1);
  }

  /** Tell every node the run is over (with the fault, if it ended on one). */
  async end(fault?: string): Promise<void> {
    const { keys } = this.link;
    for (let i = 0; i < this.target.nodes; i++) {
      const key = keys.in(this.session, i);
      for (const p of partsOf(Kind.command, COORDINATOR, this.nextId++, { cmd: 'end', reason: fault }))
        this.link.push(key, p);
      this.link.cmd.pExpire(key, 60_000).catch(() => {});
    }
    await this.link.cmd.del([keys.coord(this.session), keys.session]).catch(() => {});
  }

  failWith(f: NodeFault): void {
    if (this.fault || this.closed) return;
    this.fault = f;
    for (const p of this.pending.values()) p.reject(f);
    this.pending.clear();
  }

  /** Pop answers and notices; renew the session; watch every node's heartbeat. */
  private async serve(): Promise<void> {
    const { keys, cmd } = this.link;
    let renewed = Date.now();
    while (!this.closed) {
      const popped = await this.link.pop([keys.coord(this.session)], 0.5);
      if (popped) this.dispatch(popped.element);
      if (Date.now() - renewed > 2000) {
        renewed = Date.now();
        cmd
          .set(keys.session, this.session, { expiration: { type: 'PX', value: SESSION_MS } })
          .catch(() => {});
        if (this.running && !this.fault) await this.checkHeartbeats();
      }
    }
  }

  private async checkHeartbeats(): Promise<void> {
    const { keys, cmd } = this.link;
    let beats: (Buffer | null)[];
    try {
      beats = await cmd.mGet(
        Array.from({ length: this.target.nodes }, (_, i) => keys.alive(this.session, i)),
      );
    } catch {
      return; // a lost connection: reported by the link
    }
    const dead = beats.findIndex((b) => b === null);
    if (dead >= 0)
      this.failWith(
        new NodeFault(
          dead,
          `no heartbeat for ${ALIVE_MS / 1000} s (the process died, hangs, or lost the broker)`,
        ),
      );
  }

  private dispatch(b: Buffer): void {
    const e = openEnvelope(b);
    const whole = this.assembler.add(e);
    if (whole === undefined) return;
    const v = whole.value as any;
    if (e.kind === Kind.notice) {
      if (v.hello) this.hellos.set(e.from, v.hello as Hello);
      else if (v.fault) this.failWith(new NodeFault(e.from, v.fault));
      return;
    }
    const waiting = this.pending.get(`${e.from}:${e.id}`);
    if (!waiting) return;
    this.pending.delete(`${e.from}:${e.id}`);
    if (v.error) {
      const E = v.error.name === 'ModelError' || v.error.name === 'ModelFunctionError' ? ModelError : Error;
      waiting.reject(new E(`node ${e.from}: ${v.error.message}`));
    } else waiting.resolve(v.ok);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.loop;
    this.link.close();
  }
}

/** The default name of a run on the broker: what it explores, and on how many nodes. */
export function runName(variant: ResolvedVariant, nodes: number): string {
  const params = Object.entries(variant.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${variant.modelId}/${variant.name}${params ? `/${params}` : ''}/${nodes}`;
}

export async function distributedSearch(
  variant: ResolvedVariant,
  cfg: DistributedConfig,
): Promise<SearchOutcome> {
  if (variant.source === undefined)
    throw new ModelError(`model '${variant.modelId}': --broker needs a model loaded from a file`);
  const { nodes } = cfg.broker;
  if (cfg.resume && cfg.resume.workers !== nodes)
    throw new ModelError(
      `the checkpoint has ${cfg.resume.workers} partitions: resume it with --node 0/${cfg.resume.workers}`,
    );
  const log = cfg.log ?? (() => {});
  const t0 = Date.now();
  const started = performance.now() - (cfg.resume?.coordinator.seconds ?? 0) * 1000;
  const data = cfg.memoryLimit === undefined ? undefined : (dataBudget(cfg.memoryLimit) ?? 0) - 64 * 2 ** 20;
  const host = new NodeHost(variant, { ...cfg.broker, node: 0 }, data, log);
  const hostRun = host.run();
  hostRun.catch(() => {});
  const coord = await Coordinator.connect(variant, cfg.broker, log);
  if (cfg.resume) {
    const c = cfg.resume.coordinator;
    coord.progress = {
      states: c.states,
      depth: c.depth,
      frontier: 0,
      transitions: c.transitions,
      seconds: c.seconds,
    };
  }
  const onProgress = (p: Progress) => {
    coord.progress = p;
    cfg.onProgress?.(p);
  };
  /** The checkpoint to resume from: one written during this run, else the one it started from. */
  const lastCheckpoint = (): Checkpoint | undefined => {
    const file = cfg.checkpoint?.file;
    if (file && existsSync(file) && statSync(file).mtimeMs >= t0) return readCheckpoint(file);
    return cfg.resume;
  };
  let resume = cfg.resume;
  let resumes = 0;
  let fault: string | undefined;
  try {
    for (;;) {
      try {
        await coord.newSession();
        await coord.waitForNodes(cfg.joinSeconds ?? 600);
        const run = { ...cfg, workers: nodes, resume, onProgress };
        const remotes = Array.from({ length: nodes }, (_, i) => coord.remote(i));
        const partitionCfg = {
          check: cfg.check,
          symmetry: cfg.symmetry,
          view: cfg.view ?? false,
          recordEdges: cfg.recordEdges,
        };
        await Promise.all(remotes.map((_, i) => coord.ask(i, { cmd: 'start', cfg: partitionCfg })));
        if (resume)
          await Promise.all(remotes.map((r, i) => r.ask({ cmd: 'restore', saved: resume!.partitions[i] })));
        const levels = await runLevels(remotes, run, started, variant);
        const dumps = await Promise.all(remotes.map((r) => r.ask<PartitionDump>({ cmd: 'dump' })));
        return merge(dumps, levels, started);
      } catch (e) {
        if (!(e instanceof NodeFault)) throw e;
        const from = lastCheckpoint();
        const level = coord.progress.depth + 1;
        const partial = () =>
          new DistributedFault({
            model: variant.modelId,
            variant: variant.name,
            nodes,
            ...(e.node !== undefined && { node: e.node }),
            reason: e.message,
            level,
            states: coord.progress.states,
            transitions: coord.progress.transitions,
            ...(e.node !== undefined &&
              coord.reports.has(e.node) && { lostStates: coord.reports.get(e.node)!.size }),
            violatedBefore: [...coord.violated].map(([property, depth]) => ({ property, depth })),
            resumes,
            ...(from && cfg.checkpoint && { checkpoint: cfg.checkpoint.file }),
          });
        if (!from || resumes >= MAX_RESUMES) {
          const f = partial();
          fault = f.message;
          throw f;
        }
        resumes++;
        resume = from;
        const c = from.coordinator;
        coord.progress = {
          states: c.states,
          depth: c.depth,
          frontier: 0,
          transitions: c.transitions,
          seconds: c.seconds,
        };
        coord.reports.clear();
        coord.violated.clear();
        log(
          `${e.node === undefined ? 'the broker' : `node ${e.node}`} failed during level ${level} (${e.message}); ` +
            `resuming from the checkpoint of level ${from.coordinator.depth} once every node has joined again`,
        );
      }
    }
  } catch (e) {
    fault ??= (e as Error).message;
    throw e;
  } finally {
    await coord.end(fault).catch(() => {});
    host.stop();
    await hostRun.catch(() => {});
    await coord.close();
  }
}
