/**
 * The exchange of a distributed search (distributed-bfs.ts): partitions in
 * separate processes, on one machine or several, with a Redis server between
 * them (the measured choice: explorer/bench/broker-choice.ts and
 * explorer/README.md, "Distributed search").
 *
 * A process hosts one partition on a worker thread, exactly as `--workers`
 * does (worker.ts), and talks to the broker on its main thread, whose event
 * loop is free while the partition computes. The partition sees an
 * `Exchange` (exchange.ts), `RelayExchange` below: send() hands a batch to
 * the main thread, which pushes it onto its owner's list; the owner's main
 * thread pops it and passes it to its partition thread, whose poll() takes
 * it in and answers with a credit. A sender has at most WINDOW batches to
 * each peer that the peer's partition has not taken in yet, so memory is
 * bounded everywhere (in both processes and in the broker) and a slow owner
 * slows its senders. A sender waiting for credit takes in what it was sent
 * meanwhile (the `consume` hook), so two partitions that send to each other
 * never wait on each other.
 *
 * Everything on the broker is an envelope (`envelope` below): six 32-bit
 * little-endian words, then a payload in node's structured serialisation
 * (v8.serialize; typed arrays go as their bytes):
 *
 *   MAGIC, kind, from, id, part, parts, payload...
 *
 * kind BATCH: one Batch (exchange.ts), at most 256 KB of records; CREDIT: no
 * payload, the sender's partition took in one batch from `from`; COMMAND and
 * ANSWER: a coordinator's command to a node, a node's answer (id pairs them),
 * in parts of at most PART_BYTES; NOTICE: a node's hello (what it runs) or a
 * fault it saw.
 */
import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { deserialize, serialize } from 'node:v8';
import type { Batch, Exchange } from './exchange.ts';

export const MAGIC = 0x766d6331; // 'vmc1'
export const Kind = { batch: 1, credit: 2, command: 3, answer: 4, notice: 5 } as const;
export type KindName = keyof typeof Kind;
const HEADER_BYTES = 24;
/** Batches to one peer that its partition has not taken in yet: 4 x 256 KB. */
export const WINDOW = 4;
/** The largest part of a command or an answer (a dump, a checkpoint's partition) on the broker. */
export const PART_BYTES = 256 * 1024;
/** `from` of the coordinator's messages. */
export const COORDINATOR = 0xffff;

export interface Envelope {
  readonly kind: number;
  readonly from: number;
  readonly id: number;
  readonly part: number;
  readonly parts: number;
  readonly payload: Uint8Array;
}

export function envelope(
  kind: number,
  from: number,
  id: number,
  part: number,
  parts: number,
  payload?: Uint8Array,
): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + (payload?.length ?? 0));
  [MAGIC, kind, from, id, part, parts].forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
  if (payload) b.set(payload, HEADER_BYTES);
  return b;
}

export function openEnvelope(b: Uint8Array): Envelope {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < HEADER_BYTES || view.getUint32(0, true) !== MAGIC)
    throw new Error(`a message on the broker is not a vfio-mc envelope (${b.byteLength} bytes)`);
  const w = (i: number) => view.getUint32(i * 4, true);
  return { kind: w(1), from: w(2), id: w(3), part: w(4), parts: w(5), payload: b.subarray(HEADER_BYTES) };
}

/** A value as the envelopes of one message: serialised, cut into parts of at most PART_BYTES. */
export function partsOf(kind: number, from: number, id: number, value: unknown): Buffer[] {
  const bytes = serialize(value);
  const parts = Math.max(1, Math.ceil(bytes.length / PART_BYTES));
  return Array.from({ length: parts }, (_, k) =>
    envelope(kind, from, id, k, parts, bytes.subarray(k * PART_BYTES, (k + 1) * PART_BYTES)),
  );
}

/** Puts the parts of messages back together, per sender and id. */
export class Assembler {
  private readonly pending = new Map<string, Uint8Array[]>();

  clear(): void {
    this.pending.clear();
  }

  /** The whole value once its last part has come, else undefined. */
  add(e: Envelope): { value: unknown } | undefined {
    if (e.parts === 1) return { value: deserialize(e.payload) };
    const key = `${e.kind}:${e.from}:${e.id}`;
    const got = this.pending.get(key) ?? [];
    got[e.part] = e.payload;
    this.pending.set(key, got);
    if (got.filter(Boolean).length < e.parts) return undefined;
    this.pending.delete(key);
    return { value: deserialize(Buffer.concat(got)) };
  }
}

/** A fresh ArrayBuffer holding exactly these bytes (a Buffer may be a view of a larger pool). */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b.buffer as ArrayBuffer;
  return new Uint8Array(b).buffer as ArrayBuffer; // a copy (Buffer.slice would be a view)
}

/** What a node's main thread gives its partition thread: a port, and the credit counters they share. */
export interface RelayInit {
  readonly port: MessagePort;
  /** Int32Array(size): batches sent to each peer that the peer's partition has not taken in yet. */
  readonly outstanding: SharedArrayBuffer;
}

/** Between a partition thread and its node's main thread. */
export type RelayMessage =
  /** partition -> main: a batch for `to`, serialised; main -> partition: a batch that came. */
  | { readonly to: number; readonly bytes: ArrayBuffer }
  /** partition -> main: one batch from `credit` was taken in; tell its sender. */
  | { readonly credit: number };

/** The partition's side: the Exchange it sees (worker.ts never knows there is a broker). */
export class RelayExchange implements Exchange {
  consume?: () => void;
  private readonly outstanding: Int32Array;
  /** A batch the port delivered as an event, while the partition was idle. */
  private readonly early: ArrayBuffer[] = [];

  constructor(
    readonly self: number,
    readonly size: number,
    private readonly relay: RelayInit,
  ) {
    this.outstanding = new Int32Array(relay.outstanding);
    // A partition that has expanded its share of a level is idle until the coordinator says
    // 'drain', which it says once every partition has expanded; a peer still expanding may be
    // waiting for this one's credit. So batches that come while the partition is idle are
    // taken in at once (the event loop runs only between commands; during one, poll() takes them).
    relay.port.on('message', (m: { bytes: ArrayBuffer }) => {
      this.early.push(m.bytes);
      this.consume?.();
    });
  }

  send(to: number, batch: Batch): void {
    for (let n = Atomics.load(this.outstanding, to); n >= WINDOW; n = Atomics.load(this.outstanding, to)) {
      this.consume?.();
      Atomics.wait(this.outstanding, to, n, 5);
    }
    Atomics.add(this.outstanding, to, 1);
    const bytes = ownBuffer(serialize(batch));
    this.relay.port.postMessage({ to, bytes } satisfies RelayMessage, [bytes]);
  }

  poll(): Batch | undefined {
    const bytes =
      this.early.shift() ??
      (receiveMessageOnPort(this.relay.port)?.message as { bytes: ArrayBuffer } | undefined)?.bytes;
    if (bytes === undefined) return undefined;
    const batch = deserialize(new Uint8Array(bytes)) as Batch;
    this.relay.port.postMessage({ credit: batch.from } satisfies RelayMessage);
    return batch;
  }

  close(): void {
    this.relay.port.close();
  }
}
