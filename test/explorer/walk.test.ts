import { describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import { defineModel } from '../../explorer/model.ts';
import { walk } from '../../explorer/walk.ts';
import exampleLocks from '../../machines/example-locks.ts';
import { countersModel } from '../fixtures/counters.ts';

/** Three counters to 9; the invariant breaks only deep (counter 0 reaching 9), beyond a small BFS bound. */
function deepBug() {
  const v = countersModel(3, 9).variant();
  return defineModel({
    id: 'deep-bug',
    machine: v.machine,
    events: v.events,
    invariants: { counter0BelowNine: (s) => (s.context as { count: number[] }).count[0] < 9 },
  }).variant();
}

describe('random deep walks', () => {
  it('find a violation deeper than the BFS bound reaches', async () => {
    const bfs = await explore(deepBug(), { depth: 6 });
    expect(bfs.violations).toEqual([]);
    expect(bfs.complete).toBe(false);
    const w = walk(deepBug(), { runs: 200, depth: 200, seed: 42 });
    expect(w.violation?.property).toBe('counter0BelowNine');
    // Shrunk to the shortest possible walk: nine increments of counter 0.
    expect(w.violation?.trace.map((s) => s.event)).toEqual(
      Array.from({ length: 9 }, () => ({ type: 'Inc', i: 0 })),
    );
  });

  it('shrinking gives a trace no longer than the one first found, and --replay reproduces it', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const w = walk(exampleLocks.variant('unlocked-count'), { runs: 100, depth: 40, seed });
      expect(w.violation).toBeDefined();
      expect(w.violation?.trace.length).toBeLessThanOrEqual(w.firstFoundLength ?? 0);
      // The same walk arbitrary (same depth), the same seed and path: the same run.
      const again = walk(exampleLocks.variant('unlocked-count'), {
        depth: 40,
        replay: { seed: w.seed, path: w.path ?? '' },
      });
      expect(again.violation?.property).toBe(w.violation?.property);
      expect(again.violation?.trace.map((s) => s.event)).toEqual(w.violation?.trace.map((s) => s.event));
    }
  });

  it('walks take enabled events only, and report a deadlock where a walk gets stuck', () => {
    const w = walk(exampleLocks.variant('abba'), { runs: 100, depth: 20, seed: 9 });
    expect(w.violation?.kind).toBe('deadlock');
    expect(w.violation?.trace).toHaveLength(2);
  });

  it('a model without violations passes every walk, and reports the seed', () => {
    const w = walk(exampleLocks.variant('ordered'), { runs: 30, depth: 20, seed: 11 });
    expect(w).toMatchObject({ runs: 30, seed: 11 });
    expect(w.violation).toBeUndefined();
  });

  it('rejects bad walk bounds', () => {
    expect(() => walk(exampleLocks.variant('ordered'), { runs: 0 })).toThrow(
      'walk runs must be a positive integer',
    );
  });
});

describe('walk records the parameters', () => {
  it('the result names the --set values the variant was built with', async () => {
    const { default: regions } = await import('../../explorer/bench/dma-regions.ts');
    const r = walk(regions.variant('default', { regions: 2 }), { runs: 2, depth: 5, seed: 1 });
    expect(r.params).toEqual({ regions: 2, pins: 2 });
  });
});
