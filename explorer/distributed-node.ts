/**
 * One node of a distributed search (`vfio-mc explore MODEL --broker URL
 * --node I/N`): a process hosting partition I on a worker thread, as
 * `--workers` does, and relaying between that thread and the broker
 * (exchange-broker.ts). The coordinator (node 0's distributed-bfs.ts) sends
 * it commands; the node answers them, and passes batches and credits
 * between its partition and its peers. It joins the session the coordinator
 * names on `join:I` (again after a fault, when the coordinator resumes from
 * a checkpoint), says hello with what it runs (so a node on another machine
 * with another model file is refused), and keeps a heartbeat while it serves.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { ALIVE_MS, BrokerLink, type BrokerTarget, SESSION_MS } from './broker-link.ts';
import {
  Assembler,
  envelope,
  Kind,
  openEnvelope,
  ownBuffer,
  partsOf,
  type RelayInit,
  type RelayMessage,
} from './exchange-broker.ts';
import type { ResolvedVariant } from './model.ts';
import { modelDigest, modelFiles, TOOL_VERSION } from './model-digest.ts';
import { PartitionThread } from './parallel-bfs.ts';
import type { Command, PartitionConfig, WorkerInit } from './worker.ts';

const ENTRY = new URL('./distributed-entry.mjs', import.meta.url);

/** What a node says when it joins: the coordinator refuses a node that runs something else. */
export interface Hello {
  readonly node: number;
  readonly nodes: number;
  readonly tool: string;
  readonly model: string;
  readonly variant: string;
  readonly params: Record<string, number>;
  /** The digest of the model file and the files it imports (model-digest.ts): the same model on every machine, not just the same name. */
  readonly digest: string;
  readonly host: string;
  readonly pid: number;
}

/** Commands a node answers itself; the others go to its partition thread. */
export type NodeCommand =
  { cmd: 'start'; cfg: PartitionConfig } | { cmd: 'end'; reason?: string } | { cmd: 'stats' } | Command;

export function helloOf(variant: ResolvedVariant, node: number, nodes: number): Hello {
  const source = variant.source!;
  return {
    node,
    nodes,
    tool: TOOL_VERSION,
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    digest: modelDigest(modelFiles(source.file)),
    host: process.env.HOSTNAME ?? 'localhost',
    pid: process.pid,
  };
}

/** How a node's service ended: the coordinator said the run is over (with a fault, or not). */
export interface NodeEnd {
  readonly fault?: string;
}

export class NodeHost {
  private link!: BrokerLink;
  private session = '';
  private thread: PartitionThread | undefined;
  private port: MessagePort | undefined;
  private outstanding: Int32Array<ArrayBufferLike> = new Int32Array(0);
  private readonly assembler = new Assembler();
  private lost: string | undefined;
  private stopped = false;

  constructor(
    private readonly variant: ResolvedVariant,
    private readonly target: BrokerTarget,
    /** This node's share of its machine's --memory, for its partition. */
    private readonly dataBytes: number | undefined,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** Serve until the coordinator ends the run. */
  async run(): Promise<NodeEnd> {
    const { node } = this.target;
    this.link = await BrokerLink.connect(this.target, (why) => (this.lost = why));
    const keys = this.link.keys;
    const heartbeat = setInterval(() => void this.beat(), 1000);
    try {
      this.session = await this.join();
      for (;;) {
        const popped = await this.link.pop([keys.in(this.session, node), keys.join(node)], 1);
        if (this.stopped) return { fault: 'stopped' };
        if (this.lost !== undefined) {
          const why = this.lost;
          this.lost = undefined;
          this.notice({ fault: `node ${node}: ${why}` });
        }
        if (popped === undefined) {
          if (Date.now() - this.sessionSeen > SESSION_MS)
            return {
              fault: `the coordinator (node 0) has not renewed its session for ${SESSION_MS / 1000} s`,
            };
          continue;
        }
        if (popped.key === keys.join(node)) {
          await this.rejoin(popped.element.toString());
          continue;
        }
        const end = this.handle(popped.element);
        if (end) return await end;
      }
    } finally {
      clearInterval(heartbeat);
      await this.stopThread();
      this.link.close();
    }
  }

  stop(): void {
    this.stopped = true;
  }

  private sessionSeen = Date.now();

  /** Renew the heartbeat; note when the coordinator's session was last seen. */
  private async beat(): Promise<void> {
    if (this.session === '') return;
    const { keys, cmd } = this.link;
    try {
      await cmd.set(keys.alive(this.session, this.target.node), '1', {
        expiration: { type: 'PX', value: ALIVE_MS },
      });
      const s = await cmd.get(keys.session);
      if (s?.toString() === this.session) this.sessionSeen = Date.now();
    } catch {
      // a lost connection: reported by the link
    }
  }

  /** Wait for a session to join (the coordinator may start after this node). */
  private async join(): Promise<string> {
    const { keys } = this.link;
    if (this.target.node > 0)
      this.log(`node ${this.target.node}/${this.target.nodes}: waiting for the coordinator (node 0)`);
    for (;;) {
      const popped = await this.link.pop([keys.join(this.target.node)], 1);
      if (popped === undefined) continue;
      const s = popped.element.toString();
      // A broker restart while we ask drops the command: ask again on the next join.
      const current = await this.link.cmd.get(keys.session).then(
        (v) => v?.toString(),
        () => undefined,
      );
      if (current !== s) continue; // left by a run that is over (or the broker went away)
      await this.adopt(s);
      return s;
    }
  }

  private async rejoin(s: string): Promise<void> {
    this.log(`node ${this.target.node}: the coordinator restarts the run (session ${s})`);
    await this.stopThread();
    await this.adopt(s);
  }

  private async adopt(s: string): Promise<void> {
    this.session = s;
    this.sessionSeen = Date.now();
    await this.beat();
    this.notice({ hello: helloOf(this.variant, this.target.node, this.target.nodes) });
  }

  private notice(value: unknown): void {
    for (const p of partsOf(Kind.notice, this.target.node, 0, value))
      this.link.push(this.link.keys.coord(this.session), p);
  }

  /** One envelope from the broker; a promise when it ends the run. */
  private handle(b: Buffer): Promise<NodeEnd> | undefined {
    const e = openEnvelope(b);
    if (e.kind === Kind.batch) {
      const bytes = ownBuffer(e.payload);
      this.port?.postMessage({ to: this.target.node, bytes } satisfies RelayMessage, [bytes]);
    } else if (e.kind === Kind.credit) {
      if (this.outstanding.length > e.from) {
        Atomics.sub(this.outstanding, e.from, 1);
        Atomics.notify(this.outstanding, e.from);
      }
    } else if (e.kind === Kind.command) {
      const whole = this.assembler.add(e);
      if (whole === undefined) return undefined;
      const c = whole.value as NodeCommand;
      if (c.cmd === 'end') return Promise.resolve(c.reason ? { fault: c.reason } : {});
      void this.answer(e.id, c);
    }
    return undefined;
  }

  private async answer(id: number, c: NodeCommand): Promise<void> {
    let reply: unknown;
    try {
      reply = { ok: await this.execute(c) };
    } catch (err) {
      const x = err as Error;
      reply = { error: { name: x.name, message: x.message } };
    }
    const coord = this.link.keys.coord(this.session);
    try {
      for (const p of partsOf(Kind.answer, this.target.node, id, reply))
        await this.link.pushBounded(coord, p);
    } catch (err) {
      // The broker went away under the answer (a restart): the coordinator never sees it, so this
      // is a fault of the run (reported on the next pop), never an unhandled rejection.
      this.lost ??= `the broker did not take an answer: ${(err as Error).message}`;
    }
  }

  private async execute(c: NodeCommand): Promise<unknown> {
    if (c.cmd === 'start') return this.startThread(c.cfg);
    if (c.cmd === 'stats') return { bytesSent: this.link.bytesSent };
    if (c.cmd === 'end') return undefined;
    if (!this.thread) throw new Error(`node ${this.target.node}: '${c.cmd}' before 'start'`);
    return this.thread.ask(c);
  }

  /** A fresh partition thread, its relay port wired to the broker. */
  private async startThread(cfg: PartitionConfig): Promise<string> {
    await this.stopThread();
    const { node, nodes } = this.target;
    const { port1, port2 } = new MessageChannel();
    const outstanding = new SharedArrayBuffer(4 * nodes);
    const relay: RelayInit = { port: port2, outstanding };
    const init: WorkerInit & { relay: RelayInit } = {
      source: this.variant.source!,
      partition: node,
      partitions: nodes,
      cfg: { ...cfg, ...(this.dataBytes !== undefined && { dataBytes: this.dataBytes }) },
      ports: [],
      relay,
    };
    this.outstanding = new Int32Array(outstanding);
    this.port = port1;
    port1.on('message', (m: RelayMessage) => {
      const keys = this.link.keys;
      if ('credit' in m)
        this.link.push(keys.in(this.session, m.credit), envelope(Kind.credit, node, 0, 0, 1));
      else
        this.link.push(
          keys.in(this.session, m.to),
          envelope(Kind.batch, node, 0, 0, 1, new Uint8Array(m.bytes)),
        );
    });
    this.thread = new PartitionThread(new Worker(ENTRY, { workerData: init, transferList: [port2] }));
    return this.thread.next<string>();
  }

  private async stopThread(): Promise<void> {
    this.port?.close();
    this.port = undefined;
    const t = this.thread;
    this.thread = undefined;
    await t?.worker.terminate();
  }
}
