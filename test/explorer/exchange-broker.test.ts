/**
 * The broker exchange's pieces (exchange-broker.ts): envelopes and messages
 * cut into parts and put back together, and the credit window: a partition
 * with WINDOW batches outstanding to a peer waits in send(), taking in what
 * it is sent meanwhile (so two partitions sending to each other go on), and
 * a batch taken in answers its sender with a credit.
 */
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { Batch } from '../../explorer/exchange.ts';
import {
  Assembler,
  envelope,
  Kind,
  openEnvelope,
  PART_BYTES,
  partsOf,
  RelayExchange,
  type RelayMessage,
  WINDOW,
} from '../../explorer/exchange-broker.ts';
import { serialize } from 'node:v8';

const batch = (from: number, n: number): Batch => ({
  from,
  dictFirst: 0,
  dict: [['s', 'mdev']],
  records: new Int32Array(n).map((_, i) => i),
  count: 1,
});

describe('envelopes', () => {
  it('a large value goes in parts of at most PART_BYTES and comes back whole', () => {
    const value = { cmd: 'restore', words: new Int32Array(300_000).map((_, i) => i * 7) };
    const parts = partsOf(Kind.command, 3, 42, value);
    expect(parts.length).toBe(Math.ceil(serialize(value).length / PART_BYTES));
    expect(parts.every((p) => p.length <= PART_BYTES + 24)).toBe(true);
    const a = new Assembler();
    const got = [...parts].reverse().map((p) => a.add(openEnvelope(p)));
    expect(got.slice(0, -1).every((g) => g === undefined)).toBe(true);
    expect(got.at(-1)!.value).toEqual(value);
  });

  it('a message that is not an envelope is refused', () => {
    expect(() => openEnvelope(Buffer.from('hello, redis'))).toThrow(/not a vfio-mc envelope/);
    expect(openEnvelope(envelope(Kind.credit, 7, 0, 0, 1))).toMatchObject({ kind: Kind.credit, from: 7 });
  });
});

describe('the credit window', () => {
  it('send() waits for a credit beyond WINDOW batches, taking in what arrives meanwhile', () => {
    const { port1: main, port2: mine } = new MessageChannel();
    const outstanding = new SharedArrayBuffer(4 * 2);
    const x = new RelayExchange(0, 2, { port: mine, outstanding });
    const counts = new Int32Array(outstanding);
    for (let i = 0; i < WINDOW; i++) x.send(1, batch(0, 10));
    expect(counts[1]).toBe(WINDOW);
    let consumed = 0;
    x.consume = () => {
      // what the partition does while it waits: take in batches; here, the peer's credit comes
      if (++consumed === 3) Atomics.sub(counts, 1, 1);
    };
    x.send(1, batch(0, 10));
    expect(consumed).toBe(3);
    expect(counts[1]).toBe(WINDOW);
    let sent = 0;
    while (receiveMessageOnPort(main)) sent++;
    expect(sent).toBe(WINDOW + 1);
    main.close();
  });

  it('a batch taken in is answered with a credit to its sender', () => {
    const { port1: main, port2: mine } = new MessageChannel();
    const x = new RelayExchange(0, 3, { port: mine, outstanding: new SharedArrayBuffer(12) });
    const bytes = new Uint8Array(serialize(batch(2, 5))).buffer;
    main.postMessage({ to: 0, bytes } satisfies RelayMessage, [bytes]);
    const b = x.poll()!;
    expect(b.from).toBe(2);
    expect([...b.records]).toEqual([0, 1, 2, 3, 4]);
    expect(receiveMessageOnPort(main)?.message).toEqual({ credit: 2 });
    expect(x.poll()).toBeUndefined();
    main.close();
  });

  it('a batch that comes while the partition is idle is taken in at once (its sender may be waiting)', async () => {
    const { port1: main, port2: mine } = new MessageChannel();
    const x = new RelayExchange(0, 2, { port: mine, outstanding: new SharedArrayBuffer(8) });
    const taken: number[] = [];
    x.consume = () => {
      for (let b = x.poll(); b !== undefined; b = x.poll()) taken.push(b.from);
    };
    const bytes = new Uint8Array(serialize(batch(1, 3))).buffer;
    main.postMessage({ to: 0, bytes } satisfies RelayMessage, [bytes]);
    await new Promise((r) => setTimeout(r, 20)); // the partition's event loop runs: it is idle
    expect(taken).toEqual([1]);
    expect(receiveMessageOnPort(main)?.message).toEqual({ credit: 1 });
    main.close();
  });
});
