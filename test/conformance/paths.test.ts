import { describe, expect, it } from 'vitest';
import { callTransitions, checkPathFile, generatePaths } from '../../conformance/paths.ts';
import { defineModel } from '../../explorer/model.ts';
import { replay } from '../../explorer/trace.ts';
import exampleLocks from '../../machines/example-locks.ts';

/** example-locks with its lock-taking steps declared as "calls", so it has a coverage universe. */
const withCalls = defineModel({
  id: 'example-locks-calls',
  machine: exampleLocks.variant('ordered').machine,
  events: exampleLocks.variant('ordered').events,
  invariants: {},
  calls: ['ThreadATakeFirst', 'ThreadBTakeFirst', 'ThreadAUnlock', 'ThreadBUnlock'],
}).variant();

describe('conformance paths', () => {
  it('cover every call transition with a shortest path, prefixes folded away', () => {
    const f = generatePaths(withCalls);
    expect(f.complete).toBe(true);
    expect(f.coverage.transitions).toEqual({ total: 4, covered: 4, uncovered: [] });
    expect(callTransitions(withCalls)).toHaveLength(4);
    const covers = f.paths.flatMap((p) => p.covers);
    expect(new Set(covers).size).toBe(covers.length);
    // ThreadATakeFirst is covered by a path whose first step takes it (shortest: one step).
    const takeA = f.paths.find((p) => p.covers.some((c) => c.includes('#ThreadATakeFirst')));
    expect(
      takeA?.steps[0].event.type === 'ThreadATakeFirst' ||
        takeA?.steps.some((s) => s.event.type === 'ThreadATakeFirst'),
    ).toBe(true);
    // No path is a prefix of another.
    const keys = f.paths.map((p) => p.steps.map((s) => s.event.type).join(','));
    for (const a of keys) for (const b of keys) if (a !== b) expect(b.startsWith(`${a},`)).toBe(false);
    // Every path replays on xstate's transition().
    for (const p of f.paths)
      expect(() =>
        replay(
          withCalls,
          p.steps.map((s) => s.event),
        ),
      ).not.toThrow();
  });

  it('a path file round-trips, and one that no longer replays names the path and the step', () => {
    const f = JSON.parse(JSON.stringify(generatePaths(withCalls)));
    expect(checkPathFile(f, 'p.json', withCalls).paths.length).toBe(f.paths.length);
    f.paths[0].steps.unshift({ actor: 'threadA', event: { type: 'ThreadAUnlock' }, call: true });
    expect(() => checkPathFile(f, 'p.json', withCalls)).toThrow(
      /p\.json: path '.*p001': .*step 1, event 'ThreadAUnlock'/,
    );
    expect(() => checkPathFile({ format: 'x' }, 'p.json', withCalls)).toThrow(
      'p.json: not a vfio-mc path file',
    );
  });

  it('refuses a model without uAPI calls', () => {
    expect(() => generatePaths(exampleLocks.variant('ordered'))).toThrow('declares no uAPI calls');
  });
});
