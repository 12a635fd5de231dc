import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import exampleLocks from '../../machines/example-locks.ts';
import { countersModel, countWithinDepth } from '../fixtures/counters.ts';
import { distances, graphModel } from '../fixtures/graph.ts';

describe('state counts known in closed form', () => {
  it.each([
    [1, 5],
    [2, 3],
    [3, 4],
    [4, 2],
  ])('%i counters of 0..%i: (n+1)^k states, complete', async (k, n) => {
    for (const engine of ['compiled', 'reference'] as const) {
      const r = await explore(countersModel(k, n).variant(), { engine });
      expect(r.states).toBe((n + 1) ** k);
      expect(r.complete).toBe(true);
      expect(r.depth).toBe(k * n);
      // Every state but the last has one transition per counter still below n.
      expect(r.transitions).toBe(k * n * (n + 1) ** (k - 1));
    }
  });
});

describe('bounds', () => {
  it('the depth bound keeps exactly the states within that depth and says the search is incomplete', async () => {
    const r = await explore(countersModel(3, 4).variant(), { depth: 5 });
    expect(r.states).toBe(countWithinDepth(3, 4, 5));
    expect(r.depth).toBe(5);
    expect(r.complete).toBe(false);
    expect(r.cutBy).toBe('depth');
  });

  it('a depth bound at the true depth is complete', async () => {
    const r = await explore(countersModel(2, 3).variant(), { depth: 6 });
    expect(r.states).toBe(16);
    expect(r.complete).toBe(true);
  });

  it('the state bound stops at that many states', async () => {
    const r = await explore(countersModel(3, 4).variant(), { maxStates: 40 });
    expect(r.states).toBe(40);
    expect(r.complete).toBe(false);
    expect(r.cutBy).toBe('maxStates');
  });

  it('rejects bounds that are not positive integers', async () => {
    await expect(explore(countersModel(1, 1).variant(), { depth: 0 })).rejects.toThrow(
      /depth must be a positive integer/,
    );
    await expect(explore(countersModel(1, 1).variant(), { maxStates: 1.5 })).rejects.toThrow(/maxStates/);
  });
});

const graphs = fc.integer({ min: 2, max: 9 }).chain((n) =>
  fc.record({
    edges: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: 3 }), {
      minLength: n,
      maxLength: n,
    }),
    bad: fc.integer({ min: 1, max: n - 1 }),
  }),
);

describe('counterexamples are shortest (against brute force on random graphs)', () => {
  it('invariant violations', async () => {
    await fc.assert(
      fc.asyncProperty(graphs, async ({ edges, bad }) => {
        const r = await explore(graphModel(edges, bad).variant());
        const d = distances(edges)[bad];
        const v = r.violations.find((x) => x.property === 'neverBad');
        if (d === Number.POSITIVE_INFINITY) {
          expect(v).toBeUndefined();
        } else {
          expect(v?.trace.length).toBe(d);
          expect(v?.trace.at(-1)?.event).toEqual({ type: 'Go', to: bad });
        }
      }),
      { numRuns: 150 },
    );
  });

  it('invariant violations at several depths: the shallowest is reported, not the last found', async () => {
    // Deterministic: 0 -> 1 -> 2 -> 3 and 0 -> 4 -> 5; nodes 2, 3 and 5 are bad (depths 2, 3, 2). The
    // search goes on after the first violation (other properties, coverage), so it meets all three.
    const chain = graphModel([[1, 4], [2], [3], [], [5], []], [3, 5, 2]);
    const v = (await explore(chain.variant())).violations.find((x) => x.property === 'neverBad');
    expect(v?.trace.map((t) => t.event)).toEqual([
      { type: 'Go', to: 1 },
      { type: 'Go', to: 2 },
    ]);
    // Random graphs with two to four bad nodes: the trace is as short as the nearest one.
    await fc.assert(
      fc.asyncProperty(
        graphs
          .filter(({ edges }) => edges.length >= 3)
          .chain(({ edges }) =>
            fc.record({
              edges: fc.constant(edges),
              bads: fc.uniqueArray(fc.integer({ min: 1, max: edges.length - 1 }), {
                minLength: 2,
                maxLength: 4,
              }),
            }),
          ),
        async ({ edges, bads }) => {
          const r = await explore(graphModel(edges, bads).variant());
          const dist = distances(edges);
          const nearest = Math.min(...bads.map((b) => dist[b]));
          const found = r.violations.find((x) => x.property === 'neverBad');
          if (nearest === Number.POSITIVE_INFINITY) expect(found).toBeUndefined();
          else {
            expect(found?.trace.length).toBe(nearest);
            expect(bads).toContain((found?.trace.at(-1)?.event as unknown as { to: number }).to);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('deadlocks: the shortest path to a reachable sink', async () => {
    await fc.assert(
      fc.asyncProperty(graphs, async ({ edges, bad }) => {
        const r = await explore(graphModel(edges, bad).variant());
        const dist = distances(edges);
        const sinks = edges.map((out, i) => (out.length === 0 ? dist[i] : Number.POSITIVE_INFINITY));
        const nearest = Math.min(...sinks);
        const v = r.violations.find((x) => x.kind === 'deadlock');
        if (nearest === Number.POSITIVE_INFINITY) expect(v).toBeUndefined();
        else expect(v?.trace.length).toBe(nearest);
      }),
      { numRuns: 150 },
    );
  });
});

describe('the example model', () => {
  it('ordered: every property holds, search complete', async () => {
    const r = await explore(exampleLocks.variant('ordered'));
    expect(r.complete).toBe(true);
    expect(r.violations).toEqual([]);
    expect(r.properties.every((p) => p.status === 'holds')).toBe(true);
  });

  it('abba: the lock-order inversion is a 2-step deadlock, each thread holding one lock', async () => {
    const r = await explore(exampleLocks.variant('abba'));
    const [v] = r.violations;
    expect(v.kind).toBe('deadlock');
    expect(v.trace.map((s) => s.event.type)).toEqual(['ThreadATakeFirst', 'ThreadBTakeFirst']);
    expect(v.trace.map((s) => s.actor)).toEqual(['threadA', 'threadB']);
  });

  it('unlocked-count: the lost update is a 4-step invariant violation', async () => {
    const r = await explore(exampleLocks.variant('unlocked-count'));
    expect(r.violations.map((v) => [v.property, v.kind, v.trace.length])).toEqual([
      ['noLostUpdate', 'invariant', 4],
    ]);
    const last = r.violations[0].trace.at(-1);
    expect(last?.changes).toContainEqual({ path: 'completed', before: 1, after: 2 });
  });
});
