/** Shared by por.test.ts and por-large.slow.ts. */
import { expect } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import type { ExploreResult } from '../../explorer/result.ts';

/** Variants up to this size run in por.test.ts, every step's footprint checked; the larger ones in por-large.slow.ts. */
export const CHECKED_STATES = 25_000;

/** Invariant and deadlock verdicts: what --por must preserve. */
export const safety = (r: ExploreResult) =>
  Object.fromEntries(
    r.properties
      .filter((p) => p.kind === 'invariant' || p.kind === 'deadlock')
      .map((p) => [p.name, p.status]),
  );

/** Explore with and without --por: the same invariant and deadlock verdicts, each violation confirmed on transition(). */
export async function sameSafetyVerdicts(v: ResolvedVariant, check: boolean): Promise<void> {
  const full = await explore(v, { check: false });
  const reduced = await explore(v, { por: true, check });
  expect(reduced.reductions).toEqual(['por']);
  expect(reduced.partialOrder?.checked).toBe(check);
  expect(safety(reduced)).toEqual(safety(full));
  expect(reduced.states).toBeLessThanOrEqual(full.states);
  // explore() replays every counterexample on transition() before returning it.
  for (const [name, status] of Object.entries(safety(reduced))) {
    if (status !== 'violated') continue;
    const cex = reduced.violations.find((x) => x.property === name);
    expect(cex?.trace.length).toBeGreaterThan(0);
    expect(cex?.reducedOnly).toBe(true);
  }
  // Temporal properties other than sometimes are not judged under --por, and say so.
  for (const p of reduced.properties)
    if (!['sometimes', 'invariant', 'deadlock'].includes(p.kind)) expect(p.status).toBe('not checked');
}
