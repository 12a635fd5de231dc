/**
 * The pieces that let a search grow: the state codec (canonical, compact,
 * the same fingerprint in every codec), the visited set's bytes per state,
 * the frontier's spill to disk, --memory, checkpoints and resume, and model
 * parameters.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readCheckpoint, StoppedAtCheckpoint } from '../../explorer/checkpoint.ts';
import { Codec, Words } from '../../explorer/codec.ts';
import { explore } from '../../explorer/explore.ts';
import { Frontier } from '../../explorer/frontier.ts';
import { ModelError } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import { StateStore } from '../../explorer/state-store.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
    fc.string(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 5 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const encode = (c: Codec, x: unknown) => {
  const w = new Words();
  c.encode(w, x, 'context');
  return w.buf.slice(0, w.length);
};

describe('the state codec', () => {
  it('decodes what it encodes, for any plain data', () => {
    fc.assert(
      fc.property(json, (x) => {
        const c = new Codec();
        const words = encode(c, x);
        expect(c.decodeState(words, 0, 0).context).toEqual(JSON.parse(JSON.stringify(x)));
      }),
    );
  });

  it('gives equal data one fingerprint, whatever the key order and whichever codec (worker) encodes it', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), json, { maxKeys: 6 }),
        fc.array(fc.string(), { maxLength: 8 }),
        (o, noise) => {
          const a = new Codec();
          const b = new Codec();
          for (const s of noise) b.stringId(s); // b's ids differ from a's
          const reversed = Object.fromEntries(Object.entries(o).reverse());
          const wa = encode(a, o);
          const wb = encode(b, reversed);
          expect(b.fingerprint(wb, 0, wb.length)).toEqual(a.fingerprint(wa, 0, wa.length));
        },
      ),
    );
  });

  it('tells different data apart (and a string from a number, [] from {})', () => {
    const c = new Codec();
    const fp = (x: unknown) => {
      const w = encode(c, x);
      return c.fingerprint(w, 0, w.length);
    };
    const values = [
      0,
      '0',
      [],
      {},
      [0],
      { a: 0 },
      { a: '0' },
      null,
      false,
      [[]],
      [{}],
      { a: [], b: {} },
      { a: {}, b: [] },
    ];
    const seen = new Set(values.map((v) => JSON.stringify(fp(v))));
    expect(seen.size).toBe(values.length);
  });

  it("translates another codec's ids, so a state can travel between workers", () => {
    const a = new Codec();
    const b = new Codec();
    b.stringId('something else');
    const x = { vmm: 'blocked', waiters: [{ actor: 'mdev', dma: 1 }] };
    const words = encode(a, x);
    const map: number[] = [];
    b.importEntries(a.exportEntries(0), 0, map);
    b.translate(words, 0, words.length, map);
    expect(b.decodeState(words, 0, 0).context).toEqual(x);
  });
});

describe('memory', () => {
  it('the visited set keeps at most 16 bytes a state', () => {
    const store = new StateStore();
    store.startLevel();
    for (let i = 0; i < 300_000; i++) {
      store.add({ hi: Math.imul(i, 0x9e3779b1) >>> 0, lo: i }, i - 1, 0);
      if (i > 1000 && i % 10_000 === 0)
        expect(store.visitedBytes / store.size).toBeLessThanOrEqual(16 + (65536 * 8) / store.size);
    }
    expect(store.visitedBytes / store.size).toBeLessThanOrEqual(16.5);
  });

  it('a frontier past its budget spills to disk and reads back every state, in order', () => {
    const f = new Frontier(1); // no memory at all: every filled chunk goes to disk
    const words = new Int32Array(1000);
    for (let i = 0; i < 1000; i++) {
      words.fill(i);
      f.push(i, words, 0, 1 + (i % 1000));
    }
    expect(f.spilledBytes).toBeGreaterThan(0);
    let n = 0;
    for (const r of f) {
      expect(r.index).toBe(n);
      expect(r.end - r.start).toBe(1 + (n % 1000));
      expect(r.buf[r.start]).toBe(n);
      n++;
    }
    expect(n).toBe(1000);
    f.dispose();
  });

  it('--memory: a frontier that does not fit spills, and the search gives the same answer', async () => {
    const model = await findModel('explorer/bench/dma-regions.ts');
    const v = model.variant(undefined, { regions: 6 });
    const free = await explore(v);
    // Room for the visited set, not for a whole level in memory.
    const tight = await explore(v, { memoryLimit: process.memoryUsage().rss + 64 * 2 ** 20 + 6.5 * 2 ** 20 });
    expect(tight.spilledMB).toBeGreaterThan(0);
    expect(free.spilledMB).toBe(0);
    expect(tight.states).toBe(free.states);
    expect(tight.complete).toBe(true);
  });

  it('--memory too small for the visited set: an honest partial result, cut by memory', async () => {
    // 7^8 states, a visited set of about 90 MB against a budget of a few: cut whatever the RSS
    // did between this line and the search's start (with 7^6 states, 1.9 MB, a GC could make it fit).
    const model = await findModel('explorer/bench/dma-regions.ts');
    const r = await explore(model.variant(undefined, { regions: 8 }), {
      memoryLimit: process.memoryUsage().rss + 64 * 2 ** 20 + 3 * 2 ** 20,
    });
    expect(r.complete).toBe(false);
    expect(r.cutBy).toBe('memory');
    expect(r.states).toBeLessThan(7 ** 8);
  });
});

describe('checkpoints', () => {
  it('a search stopped after a checkpoint, resumed, ends with the counts of an uninterrupted one', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vfio-mc-ck-')), 'search.ckpt');
    const v = (await findModel('container')).variant('vfio-wait');
    const whole = await explore(v, { workers: 2 });
    let levels = 0;
    await expect(
      explore(v, { workers: 2, checkpoint: { file, everySeconds: 0, stopRequested: () => ++levels > 6 } }),
    ).rejects.toBeInstanceOf(StoppedAtCheckpoint);
    const c = readCheckpoint(file);
    expect(c.coordinator.depth).toBe(6);
    const rest = await explore(v, { resume: c });
    const sum = (r: typeof whole) => [
      r.states,
      r.transitions,
      r.depth,
      r.properties.map((p) => p.status),
      r.violations.map((x) => [x.property, x.trace.length]),
      r.coverage.neverFired,
    ];
    expect(sum(rest)).toEqual(sum(whole));
  });

  it('a file that is not a checkpoint is a clear error', () => {
    expect(() => readCheckpoint(import.meta.filename)).toThrow(ModelError);
  });
});

describe('model parameters', () => {
  it('the benchmark model at --set regions=2,pins=1: 5^2 states', async () => {
    const m = await findModel('explorer/bench/dma-regions.ts');
    expect((await explore(m.variant(undefined, { regions: 2, pins: 1 }))).states).toBe(25);
  });

  it('an out-of-range value or an unknown name is a ModelError naming the parameter', async () => {
    const m = await findModel('explorer/bench/dma-regions.ts');
    expect(() => m.variant(undefined, { regions: 99 })).toThrow(
      "dma-regions': regions must be an integer from 1 to 12, got 99",
    );
    expect(() => m.variant(undefined, { dmas: 2 })).toThrow(
      "has no parameter 'dmas' (parameters: regions, pins)",
    );
  });
});
