/**
 * How partitions send each other the successors they generate: batches of
 * packed states, each addressed to the partition that owns its fingerprint.
 * The search (parallel-bfs.ts, worker.ts) sees only the `Exchange`
 * interface, so the owners can be threads (PortExchange, below) or, later,
 * processes on several machines with a message broker between them.
 *
 * A batch carries the dictionary entries the receiver has not had from this
 * sender (codec.ts: ids are local to each codec), then its records:
 *
 *   fp.hi, fp.lo, parent (sender's state number), event (sender's event id),
 *   actors (mask of the actors that moved), flags, check bits..., length, words...
 *
 * The check bits are computed by the sender, which has the successor as an
 * object: bit k of the invariants and temporal labels, so the owner never
 * decodes a state just to check it.
 */
import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import type { Codec, DictEntry } from './codec.ts';
import type { Fingerprint } from './fingerprint.ts';

export interface Batch {
  readonly from: number;
  /** The sender's id of `dict[0]`. */
  readonly dictFirst: number;
  readonly dict: readonly DictEntry[];
  readonly records: Int32Array;
  readonly count: number;
}

export interface Exchange {
  /** This partition's number, and how many there are. */
  readonly self: number;
  readonly size: number;
  send(to: number, batch: Batch): void;
  /** The next batch that has arrived from any peer, or undefined. */
  poll(): Batch | undefined;
  close(): void;
  /**
   * Set by the partition: take in the batches that have arrived. An exchange
   * whose send() may wait for room (exchange-broker.ts) calls it while it
   * waits, so that two partitions sending to each other both go on.
   */
  consume?: () => void;
}

/** Record flag: a successor of a state at the depth bound, only to be looked up, not added. */
export const PROBE = 1;

/** Which partition owns a fingerprint: its high half, scaled onto the partitions. */
export const ownerOf = (fp: Fingerprint, partitions: number): number =>
  Math.floor(((fp.hi >>> 0) * partitions) / 4294967296);

/** Exchange between worker threads over MessagePorts, one port per peer. */
export class PortExchange implements Exchange {
  private next = 0;
  constructor(
    readonly self: number,
    readonly size: number,
    /** ports[peer]; undefined at `self`. */
    private readonly ports: readonly (MessagePort | undefined)[],
  ) {}

  send(to: number, batch: Batch): void {
    this.ports[to]!.postMessage(batch, [batch.records.buffer as ArrayBuffer]);
  }

  poll(): Batch | undefined {
    for (let k = 0; k < this.size; k++) {
      const peer = (this.next + k) % this.size;
      const port = this.ports[peer];
      if (port === undefined) continue;
      const m = receiveMessageOnPort(port);
      if (m !== undefined) {
        this.next = (peer + 1) % this.size;
        return m.message as Batch;
      }
    }
    return undefined;
  }

  close(): void {
    for (const p of this.ports) p?.close();
  }
}

const RECORD_WORDS = 1 << 16;

/** Collects records for one peer and sends them as batches of about 256 KB. */
export class BatchWriter {
  private buf = new Int32Array(RECORD_WORDS);
  private used = 0;
  private count = 0;
  /** Dictionary entries already sent to this peer. */
  private dictSent = 0;
  /** Records sent in all, for the level's accounting. */
  sent = 0;

  constructor(
    private readonly exchange: Exchange,
    private readonly to: number,
    private readonly codec: Codec,
    private readonly checkWords: number,
  ) {}

  add(
    fp: Fingerprint,
    parent: number,
    event: number,
    actors: number,
    flags: number,
    bits: Int32Array,
    words: Int32Array,
    length: number,
  ): void {
    const n = 7 + this.checkWords + length;
    if (this.used + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) this.buf = new Int32Array(n);
    }
    const b = this.buf;
    let at = this.used;
    b[at++] = fp.hi | 0;
    b[at++] = fp.lo | 0;
    b[at++] = parent;
    b[at++] = event;
    b[at++] = actors;
    b[at++] = flags;
    for (let i = 0; i < this.checkWords; i++) b[at++] = bits[i];
    b[at++] = length;
    for (let i = 0; i < length; i++) b[at++] = words[i];
    this.used = at;
    this.count++;
  }

  flush(): void {
    if (this.count === 0) return;
    const dict = this.codec.exportEntries(this.dictSent);
    const batch: Batch = {
      from: this.exchange.self,
      dictFirst: this.dictSent,
      dict,
      records: this.buf.slice(0, this.used),
      count: this.count,
    };
    this.dictSent += dict.length;
    this.sent += this.count;
    this.exchange.send(this.to, batch);
    this.used = 0;
    this.count = 0;
  }
}

/** One record of a received batch, decoded in place (its words still in `records`). */
export interface IncomingRecord {
  fp: Fingerprint;
  parent: number;
  event: number;
  actors: number;
  flags: number;
  bitsAt: number;
  start: number;
  end: number;
}

/** Walk a batch's records. */
export function* readBatch(records: Int32Array, checkWords: number): Generator<IncomingRecord> {
  const r: IncomingRecord = {
    fp: { hi: 0, lo: 0 },
    parent: 0,
    event: 0,
    actors: 0,
    flags: 0,
    bitsAt: 0,
    start: 0,
    end: 0,
  };
  let at = 0;
  while (at < records.length) {
    r.fp = { hi: records[at] >>> 0, lo: records[at + 1] >>> 0 };
    r.parent = records[at + 2];
    r.event = records[at + 3];
    r.actors = records[at + 4];
    r.flags = records[at + 5];
    r.bitsAt = at + 6;
    const length = records[at + 6 + checkWords];
    r.start = at + 7 + checkWords;
    r.end = r.start + length;
    at = r.end;
    yield r;
  }
}
