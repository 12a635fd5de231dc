/**
 * Counterexamples as Mermaid sequence diagrams, to paste into a mailing-list
 * thread or a Markdown spec. Actors are participants; a uAPI call is an arrow
 * to the kernel and its predicted result an arrow back; a call that blocks
 * is a note (it does not return), as is an internal step. A liveness cycle
 * is drawn as a `loop` block; what each blocked actor waits for closes a
 * deadlock. The title names the property, the model and the variant.
 */

import { formatChanges, formatEvent } from './report-text.ts';
import type { ExploreResult, TraceStep, Violation } from './result.ts';

/** Mermaid treats ';' and '#' specially in messages; keep the text plain. */
const esc = (s: string) =>
  s
    .replace(/;/g, ',')
    .replace(/#/g, 'no.')
    .replace(/[\r\n]+/g, ' ');

function stepLines(step: TraceStep): string[] {
  const actors = step.actor.split('+');
  const label = esc(step.label ?? formatEvent(step.event));
  const changed = step.changes.length ? esc(formatChanges(step, 3)) : '';
  if (step.call && step.result === 'blocked') {
    return [`  Note over ${actors[0]}: ${label} blocks${changed ? `<br/>${changed}` : ''}`];
  }
  if (step.call) {
    const lines = [`  ${actors[0]}->>uapi: ${label}`];
    lines.push(`  uapi-->>${actors[0]}: ${esc(step.result ?? 'returns')}${changed ? ` (${changed})` : ''}`);
    return lines;
  }
  const over = actors.length > 1 ? `${actors[0]},${actors[actors.length - 1]}` : actors[0];
  const result =
    step.result === undefined ? '' : step.result === 'blocked' ? ' blocks' : ` → ${esc(step.result)}`;
  return [`  Note over ${over}: ${label}${result}${changed ? `<br/>${changed}` : ''}`];
}

/** The diagram's title: what is violated, where. */
export function mermaidTitle(v: Violation, model: string, variant: string): string {
  const what = v.kind === 'deadlock' ? 'deadlock' : `${v.kind} '${v.property}'`;
  return `${what} in ${model} / ${variant}, ${v.trace.length} step${v.trace.length === 1 ? '' : 's'}`;
}

export function formatMermaid(v: Violation, actors: readonly string[], title?: string): string {
  const lines = title
    ? ['---', `title: ${esc(title).replace(/:/g, ' -')}`, '---', 'sequenceDiagram']
    : ['sequenceDiagram'];
  for (const a of actors) lines.push(`  participant ${a}`);
  if (v.trace.some((s) => s.call && s.result !== 'blocked')) lines.push('  participant uapi as kernel');
  v.trace.forEach((step, i) => {
    if (i === v.cycleStart) lines.push('  loop cycle (repeats forever)');
    lines.push(
      ...stepLines(step).map((l) => (v.cycleStart !== undefined && i >= v.cycleStart ? `  ${l}` : l)),
    );
  });
  if (v.cycleStart === v.trace.length) {
    lines.push(
      `  Note over ${actors[0]},${actors[actors.length - 1]}: stays here forever (no fair actor enabled)`,
    );
  } else if (v.cycleStart !== undefined) lines.push('  end');
  for (const w of v.waiting ?? []) lines.push(`  Note over ${w.actor}: waits: ${esc(w.for)}`);
  return lines.join('\n');
}

/** A Markdown document with one diagram per violation. */
export function formatMermaidDocument(r: ExploreResult, actors: readonly string[]): string {
  const parts = [`# ${r.model} / ${r.variant}`, ''];
  if (r.violations.length === 0) parts.push('No violation within the bounds.');
  for (const v of r.violations) {
    const title = mermaidTitle(v, r.model, r.variant);
    parts.push(`## ${title}`, '', '```mermaid', formatMermaid(v, actors, title), '```', '');
  }
  return `${parts.join('\n')}\n`;
}
