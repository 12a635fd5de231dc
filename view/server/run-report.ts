/**
 * What the page shows of a finished exploration: the figures, each
 * property's verdict beside what the variant expects, each counterexample
 * as the path the page can open (its events as address tokens), and which
 * transitions never fired (greyed out in the diagrams).
 */
import type { EventObject } from 'xstate';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { describeViolation } from '../../explorer/report-text.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import type { RunReport } from '../shared/api.ts';
import { eventToken } from '../shared/url.ts';

export function runReport(variant: ResolvedVariant, r: ExploreResult): RunReport {
  const expected = new Set(variant.expect?.violated ?? []);
  return {
    states: r.states,
    transitions: r.transitions,
    depth: r.depth,
    seconds: r.seconds,
    complete: r.complete,
    ...(r.cutBy && { cutBy: r.cutBy }),
    verdicts: r.properties.map((p) => {
      const v = r.violations.find((x) => x.property === p.name);
      return {
        name: p.name,
        kind: p.kind,
        status: p.status,
        ...(p.note && { note: p.note }),
        expectedViolated: expected.has(p.name),
        ...(v && {
          counterexample: {
            description: describeViolation(v),
            path: v.trace.map((s) => eventToken(s.event as EventObject & Record<string, unknown>)),
            steps: v.trace.length,
          },
        }),
      };
    }),
    neverFired: r.coverage.neverFired,
    unreachable: r.coverage.unreachable,
    transitionCount: r.coverage.transitions,
  };
}
