/** A counterexample's steps as the swim lanes draw them, in the text report's words. */
import { formatChange, formatStepLabel } from '../../explorer/report-text.ts';
import type { TraceStep } from '../../explorer/result.ts';
import type { StepView } from '../shared/api.ts';
import { eventToken } from '../shared/url.ts';

export function stepViews(trace: readonly TraceStep[]): StepView[] {
  return trace.map((s) => ({
    token: eventToken(s.event as TraceStep['event'] & Record<string, unknown>),
    actors: s.actor.split('+'),
    text: formatStepLabel(s),
    changes: s.changes.map((c) => ({ path: c.path, text: formatChange(c, false) })),
  }));
}
