/**
 * The text report: a header with the search statistics, a table of
 * properties, the transitions that never fired, and each counterexample as
 * numbered steps in per-actor swim lanes with the context fields each step
 * changed, then what every still-running actor waits for. Everything is
 * fitted to the output width (text-table.ts); `width: Infinity` is `--wide`.
 */
import { relative } from 'node:path';
import { inspect } from 'node:util';
import type { EventObject } from 'xstate';
import { searchScope } from './exit-codes.ts';
import type { Change, ExploreResult, TraceStep, Violation } from './result.ts';
import { fitWidths, formatTable, renderRows, textWidth, wrapCell } from './text-table.ts';

export interface TextOptions {
  /** Output width in columns; Infinity prints everything unwrapped and unabridged (--wide). */
  readonly width: number;
}

const DEFAULT: TextOptions = { width: 100 };

/** The event as the model names it: `VmmUnmapVaddr(range=0)`. */
export function formatEvent(e: EventObject): string {
  const { type, ...args } = e as EventObject & Record<string, unknown>;
  const params = Object.entries(args).map(
    ([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`,
  );
  return params.length ? `${type}(${params.join(', ')})` : type;
}

/** A step as the thread would write it: the uAPI label (else the event) and the predicted result. */
export function formatStepLabel(step: Pick<TraceStep, 'event' | 'label' | 'result'>): string {
  const text = step.label ?? formatEvent(step.event);
  if (step.result === undefined) return text;
  return step.result === 'blocked' ? `${text} … blocks` : `${text} = ${step.result}`;
}

const MAX_VALUE = 48;

/** A value in a change: strings bare, structures as compact JS literals (node's util.inspect). */
function fmtValue(v: unknown, abridge: boolean): string {
  const s =
    typeof v === 'string'
      ? v
      : v === undefined
        ? '(none)'
        : inspect(v, { breakLength: Number.POSITIVE_INFINITY, depth: abridge ? 3 : null, compact: true });
  return abridge && s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}

export function formatChange(c: Change, abridge: boolean): string {
  if (c.added !== undefined || c.removed !== undefined) {
    const parts = [
      ...(c.added ?? []).map((x) => `+${fmtValue(x, abridge)}`),
      ...(c.removed ?? []).map((x) => `-${fmtValue(x, abridge)}`),
    ];
    return `${c.path}: ${parts.join(' ')}`;
  }
  return `${c.path}: ${fmtValue(c.before, abridge)}→${fmtValue(c.after, abridge)}`;
}

/** The fields a step changed; with `max`, at most that many and a count of the rest. */
export function formatChanges(
  step: TraceStep,
  max = Number.POSITIVE_INFINITY,
  abridge = true,
  separator = '; ',
): string {
  // The acting actor's ret is the step's result, shown beside its label already.
  const shown =
    step.result === undefined ? step.changes : step.changes.filter((c) => c.path !== `ret.${step.actor}`);
  const parts = shown.slice(0, max).map((c) => formatChange(c, abridge));
  if (shown.length > max) parts.push(`+${shown.length - max} more`);
  return parts.join(separator);
}

export function formatSummary(r: ExploreResult, o: TextOptions = DEFAULT): string {
  const scope =
    searchScope(r) === 'complete'
      ? 'complete: every reachable state explored'
      : searchScope(r) === 'to-depth'
        ? `complete to depth ${r.bounds.depth}: every state within the depth bound explored (deeper ones not)`
        : `INCOMPLETE: cut off by the ${r.cutBy === 'depth' ? `default depth bound (${r.bounds.depth}; --depth N sets one)` : r.cutBy === 'memory' ? 'memory limit (--memory): the visited set did not fit' : r.cutBy === 'interrupted' ? `interrupt (SIGINT or SIGTERM) at depth ${r.depth}: a partial report` : `state bound (${r.bounds.maxStates})`}`;
  const lines = [
    `${r.model} / ${r.variant}  (${r.engine} engine, ${r.workers === 1 ? '1 thread' : `${r.workers} workers`}${r.checking ? '' : ', model checks off'}${r.reductions.length ? `, ${r.reductions.join(' + ')}` : ''})`,
    `  ${scope}`,
    `  ${r.states.toLocaleString('en')} distinct states, ${r.transitions.toLocaleString('en')} transitions, depth ${r.depth}, ` +
      `${r.seconds.toFixed(2)} s, ${Math.round(r.statesPerSecond).toLocaleString('en')} states/s, peak ${r.peakMemoryMB} MB`,
    `  fingerprint collision probability (optimistic, as TLC): ${r.collisionProbability.toExponential(1)}`,
  ];
  if (r.engineNote) lines.push(`  note: ${r.engineNote}`);
  for (const a of r.assumptions ?? []) lines.push(`  ASSUMES ${a}`);
  if (r.partialOrder) {
    const p = r.partialOrder;
    lines.push(
      `  partial-order reduction: ${p.reduced.toLocaleString('en')} of ${p.expanded.toLocaleString('en')} states expanded ` +
        `with one actor's steps${p.restarts ? `, ${p.restarts} restart(s) for a larger visible set` : ''}; ` +
        (p.checked
          ? 'every evaluated step within its declared footprint'
          : 'footprints not checked (--no-check)'),
    );
    for (const c of p.control ?? [])
      lines.push(`  partial-order reduction: dependent through control state: ${c}`);
  }
  if (r.spilledMB > 0) lines.push(`  the frontier spilled ${r.spilledMB} MB to disk (--memory)`);
  if (Object.keys(r.params).length > 0)
    lines.splice(
      1,
      0,
      `  parameters: ${Object.entries(r.params)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    );
  return lines.flatMap((l) => wrapCell(l, o.width).map((w, i) => (i === 0 ? w : `    ${w}`))).join('\n');
}

export function formatProperties(r: ExploreResult, o: TextOptions = DEFAULT): string {
  const rows = r.properties.map((p) => [p.name, p.kind, p.note ? `${p.status} (${p.note})` : p.status]);
  return formatTable(['property', 'kind', 'verdict'], rows, o.width - 2)
    .map((l) => `  ${l}`)
    .join('\n');
}

/** `text` wrapped to the width with every line indented (wrapping trims leading spaces), continuations by 2 more. */
const indented = (text: string, indent: number, width: number): string[] =>
  wrapCell(text, width - indent - 2).map((l, i) => `${' '.repeat(i === 0 ? indent : indent + 2)}${l}`);

/** "N of M transitions never fired" with their names, and the offered events that were never enabled. */
export function formatCoverage(r: ExploreResult, o: TextOptions = DEFAULT): string {
  const c = r.coverage;
  if (c === undefined) return '';
  const lines: string[] = [];
  const unexplained = c.neverFired.filter((t) => !(t in c.unreachable));
  const known = c.neverFired.filter((t) => t in c.unreachable);
  if (c.neverFired.length === 0) {
    lines.push(`  coverage: all ${c.transitions} transitions fired`);
  } else {
    lines.push(`  coverage: ${c.neverFired.length} of ${c.transitions} transitions never fired`);
    for (const t of unexplained) lines.push(...indented(t, 4, o.width));
    for (const t of known) lines.push(...indented(`${t} (known: ${c.unreachable[t]})`, 4, o.width));
  }
  for (const t of c.staleUnreachable)
    lines.push(...wrapCell(`  listed as unreachable but fired: ${t}`, o.width));
  if (c.neverEnabled.length > 0) {
    lines.push('  offered but never enabled:');
    lines.push(...wrapCell(c.neverEnabled.join(', '), o.width - 4).map((l) => `    ${l}`));
  }
  return lines.join('\n');
}

/**
 * Numbered steps, one lane per actor that takes a step, the changed fields
 * at the right; cells wrap to fit the width. A liveness cycle is marked ↻.
 */
export function formatSwimLanes(v: Violation, actors: readonly string[], o: TextOptions = DEFAULT): string {
  const lanes = actors.filter((a) => v.trace.some((s) => s.actor.split('+').includes(a)));
  const abridge = Number.isFinite(o.width);
  const num = String(v.trace.length).length + 1;
  const rows = v.trace.map((step, i) => [
    String(i + 1).padStart(num),
    ...lanes.map((a) => (step.actor.split('+').includes(a) ? formatStepLabel(step) : '')),
    formatChanges(step, abridge ? 6 : Number.POSITIVE_INFINITY, abridge, '\n'),
  ]);
  const header = [' '.repeat(num), ...lanes, 'changes'];
  const desired = header.map((h, i) => Math.max(textWidth(h), ...rows.map((r) => textWidth(r[i]))));
  const sep = ' | ';
  // (textWidth of a multi-line cell is its widest line)
  // The lanes are what a reader follows: they get their width first, the changes what is left
  // (at least a third of the line, or what they need if less).
  const room = o.width - sep.length * (header.length - 1) - num;
  const changes = Math.min(desired[desired.length - 1], Math.max(24, Math.floor(room / 3)));
  const laneWidths = fitWidths(
    desired.slice(1, -1),
    lanes.map((a) => Math.max(textWidth(a), 12)),
    room - changes,
  );
  const used = laneWidths.reduce((a, b) => a + b, 0);
  const widths = [num, ...laneWidths, Number.isFinite(room) ? Math.max(changes, room - used) : changes];
  const out = renderRows([header], widths, sep);
  out.push('-'.repeat(Math.min(o.width, widths.reduce((a, b) => a + b, 0) + sep.length * lanes.length + 1)));
  rows.forEach((row, i) => {
    if (v.cycleStart === i) out.push(`${'↻'.padStart(num)} | cycle: the steps below repeat forever`);
    out.push(...renderRows([row], widths, sep));
  });
  if (v.cycleStart === v.trace.length) {
    out.push(`${'↻'.padStart(num)} | stays in this state forever: no fairly scheduled actor is enabled here`);
  } else if (v.cycleStart !== undefined) {
    out.push(`${'↻'.padStart(num)} | back to the state before step ${v.cycleStart + 1}`);
  }
  return out.join('\n');
}

/** What each actor that is still running at the end waits for. */
export function formatWaiting(v: Violation, o: TextOptions = DEFAULT): string {
  if (!v.waiting?.length) return '';
  const where = v.kind === 'deadlock' ? 'blocked at the end' : 'still running at the end';
  const width = Math.max(...v.waiting.map((w) => textWidth(w.actor)));
  const lines = [`${where}:`];
  for (const w of v.waiting) {
    const lead = `  ${w.actor.padEnd(width)}  `;
    const text = wrapCell(w.for, o.width - lead.length);
    lines.push(`${lead}${text[0]}`, ...text.slice(1).map((t) => `${' '.repeat(lead.length)}${t}`));
  }
  return lines.join('\n');
}

const steps = (n: number) => `${n} step${n === 1 ? '' : 's'}`;
const shortest = (v: Violation) =>
  v.reducedOnly ? 'shortest in the reduced graph; --shortest finds a shortest one' : 'shortest';

export function describeViolation(v: Violation): string {
  switch (v.kind) {
    case 'invariant':
      return `invariant '${v.property}' violated after ${steps(v.trace.length)} (${shortest(v)})`;
    case 'deadlock':
      return `deadlock after ${steps(v.trace.length)} (${shortest(v)}): no event enabled, some actor has not terminated`;
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

/** One counterexample: what was violated, the swim lanes, the waits, and the trail file. */
export function formatViolation(v: Violation, actors: readonly string[], o: TextOptions = DEFAULT): string {
  const parts = [...wrapCell(describeViolation(v), o.width)];
  if (v.trace.length > 0 || v.kind !== 'unreachable') parts.push(formatSwimLanes(v, actors, o));
  const waits = formatWaiting(v, o);
  if (waits) parts.push(waits);
  if (v.trail) {
    const shown = relative(process.cwd(), v.trail);
    const path = shown.startsWith('..') ? v.trail : shown;
    parts.push(
      ...wrapCell(`trail: ${path}`, o.width),
      ...wrapCell(`  replay it: vfio-mc replay ${path}`, o.width),
    );
  }
  return parts.join('\n');
}

export function formatReport(r: ExploreResult, actors: readonly string[], o: TextOptions = DEFAULT): string {
  const parts = [formatSummary(r, o), formatCoverage(r, o), '', formatProperties(r, o)].filter(
    (p, i) => i !== 1 || p !== '',
  );
  for (const v of r.violations) parts.push('', formatViolation(v, actors, o));
  return parts.join('\n');
}
