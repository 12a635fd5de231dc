/**
 * The text report: a header with the search statistics, a table of
 * properties, and each counterexample as numbered steps in per-actor swim
 * lanes with the context fields each step changed.
 */
import type { EventObject } from 'xstate';
import type { ExploreResult, TraceStep, Violation } from './result.ts';

const LANE_WIDTH = 34;

export function formatEvent(e: EventObject): string {
  const { type, ...args } = e as EventObject & Record<string, unknown>;
  const params = Object.entries(args).map(
    ([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`,
  );
  return params.length ? `${type}(${params.join(', ')})` : type;
}

export function formatStepLabel(step: TraceStep): string {
  const ev = formatEvent(step.event);
  return step.result === undefined ? ev : `${ev} → ${step.result}`;
}

const fmtValue = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function formatChanges(step: TraceStep, max = 4): string {
  const parts = step.changes
    .slice(0, max)
    .map((c) => `${c.path}: ${fmtValue(c.before)}→${fmtValue(c.after)}`);
  if (step.changes.length > max) parts.push(`+${step.changes.length - max} more`);
  return parts.join('; ');
}

export function formatSummary(r: ExploreResult): string {
  const scope = r.complete
    ? 'complete: every reachable state explored'
    : `INCOMPLETE: cut off by the ${r.cutBy === 'depth' ? `depth bound (${r.bounds.depth})` : `state bound (${r.bounds.maxStates})`}`;
  const lines = [
    `${r.model} / ${r.variant}  (${r.engine} engine)`,
    `  ${scope}`,
    `  ${r.states} distinct states, ${r.transitions} transitions, depth ${r.depth}, ` +
      `${r.seconds.toFixed(2)} s, ${Math.round(r.statesPerSecond)} states/s, peak ${r.peakMemoryMB} MB`,
    `  fingerprint collision probability (optimistic, as TLC): ${r.collisionProbability.toExponential(1)}`,
  ];
  if (r.engineNote) lines.push(`  note: ${r.engineNote}`);
  return lines.join('\n');
}

export function formatProperties(r: ExploreResult): string {
  const width = Math.max(8, ...r.properties.map((p) => p.name.length));
  const rows = r.properties.map((p) => {
    const note = p.note ? `  (${p.note})` : '';
    return `  ${p.name.padEnd(width)}  ${p.kind.padEnd(11)}  ${p.status}${note}`;
  });
  return [`  ${'property'.padEnd(width)}  ${'kind'.padEnd(11)}  verdict`, ...rows].join('\n');
}

function cell(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

/** Numbered steps, one column per actor, changed fields at the right. */
export function formatSwimLanes(v: Violation, actors: readonly string[]): string {
  const num = String(v.trace.length).length + 1;
  const header = `${' '.repeat(num)} | ${actors.map((a) => cell(a, LANE_WIDTH)).join(' | ')} | changes`;
  const lines = [header, '-'.repeat(header.length + 10)];
  v.trace.forEach((step, i) => {
    if (v.cycleStart === i) lines.push(`${'↻'.padStart(num)} | cycle: the steps below repeat forever`);
    const lanes = actors.map((a) =>
      cell(step.actor.split('+').includes(a) ? formatStepLabel(step) : '', LANE_WIDTH),
    );
    lines.push(`${String(i + 1).padStart(num)} | ${lanes.join(' | ')} | ${formatChanges(step)}`);
  });
  if (v.cycleStart === v.trace.length) {
    lines.push(
      `${'↻'.padStart(num)} | stays in this state forever: no fairly scheduled actor is enabled here`,
    );
  } else if (v.cycleStart !== undefined) {
    lines.push(`${'↻'.padStart(num)} | back to the state before step ${v.cycleStart + 1}`);
  }
  return lines.join('\n');
}

const steps = (n: number) => `${n} step${n === 1 ? '' : 's'}`;

function describeViolation(v: Violation): string {
  switch (v.kind) {
    case 'invariant':
      return `invariant '${v.property}' violated after ${steps(v.trace.length)} (shortest)`;
    case 'deadlock':
      return `deadlock after ${steps(v.trace.length)} (shortest): no event enabled, some actor has not terminated`;
    case 'liveness':
      return v.cycleStart === v.trace.length
        ? `liveness '${v.property}' violated: after ${steps(v.trace.length)} the run can stop for good without satisfying it`
        : `liveness '${v.property}' violated: a fair run that never satisfies it (lasso: ${steps(v.cycleStart ?? 0)}, then a cycle of ${steps(v.trace.length - (v.cycleStart ?? 0))})`;
    case 'unrecoverable':
      return `'${v.property}' is unrecoverable after ${steps(v.trace.length)} (shortest): from here the property can never hold again`;
    case 'unreachable':
      return `'${v.property}' (sometimes) is never reached: no reachable state satisfies it`;
  }
}

export function formatReport(r: ExploreResult, actors: readonly string[]): string {
  const parts = [formatSummary(r), '', formatProperties(r)];
  for (const v of r.violations) {
    parts.push('', describeViolation(v), formatSwimLanes(v, actors));
  }
  return parts.join('\n');
}
