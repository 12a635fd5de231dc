/**
 * The verdict table: every registered model and variant explored at its
 * default bounds, and what was found compared with what the variant declares
 * it should find (`expect`), and with what it says can never fire
 * (`unreachable`). This is `npm start`, and CI's regression check: a changed
 * verdict, a changed pinned state count, a transition that stopped firing
 * (or started) all make a row unexpected.
 */
import type { Progress } from '../explorer/bfs.ts';
import { unexplained } from '../explorer/coverage.ts';
import { explore } from '../explorer/explore.ts';
import type { Model, Params } from '../explorer/model.ts';
import type { ExploreResult } from '../explorer/result.ts';
import { formatTable, wrapCell } from '../explorer/text-table.ts';

export interface VerdictRow {
  readonly model: string;
  readonly variant: string;
  readonly result: ExploreResult;
  readonly violated: readonly string[];
  readonly expectedViolated: readonly string[];
  /** Properties that could not be judged (temporal properties on a cut-off search). */
  readonly unknown: readonly string[];
  readonly asExpected: boolean;
  readonly why?: string;
}

export interface VerdictOptions {
  readonly onProgress?: (p: Progress) => void;
  readonly check?: boolean;
  readonly workers?: number | 'auto';
  /** `--view` for the variants that declare one (the others are explored whole); pinned counts are then not compared. */
  readonly view?: boolean;
}

export async function verdictRow(
  model: Model,
  variantName: string,
  params: Params = {},
  { onProgress, check = true, workers = 'auto', view = false }: VerdictOptions = {},
): Promise<VerdictRow> {
  const variant = model.variant(variantName, params);
  const viewed = view && variant.view !== undefined;
  const result = await explore(variant, { ...(onProgress && { onProgress }), check, workers, view: viewed });
  const violated = result.properties.filter((p) => p.status === 'violated').map((p) => p.name);
  const unknown = result.properties
    .filter((p) => p.status !== 'holds' && p.status !== 'violated')
    .map((p) => p.name);
  const expectedViolated = [...(variant.expect?.violated ?? [])].sort();
  const problems: string[] = [];
  const missing = expectedViolated.filter((p) => !violated.includes(p));
  const extra = violated.filter((p) => !expectedViolated.includes(p));
  if (missing.length) problems.push(`expected but not found: ${missing.join(', ')}`);
  if (extra.length) problems.push(`unexpected: ${extra.join(', ')}`);
  // Pinned counts are for the default parameters: a larger configuration has more states.
  const defaults = Object.keys(params).every((k) => params[k] === model.params[k]?.default);
  const pinned = variant.expect?.states;
  if (pinned !== undefined && defaults && !viewed && result.states !== pinned) {
    problems.push(`states ${result.states}, pinned ${pinned}`);
  }
  const uncovered = unexplained(result.coverage);
  if (uncovered.length) problems.push(`never fired, not listed as unreachable: ${uncovered.join(', ')}`);
  if (result.coverage.staleUnreachable.length)
    problems.push(`listed as unreachable, wrongly: ${result.coverage.staleUnreachable.join(', ')}`);
  return {
    model: model.id,
    variant: variantName,
    result,
    violated: [...violated].sort(),
    expectedViolated,
    unknown,
    asExpected: problems.length === 0,
    ...(problems.length && { why: problems.join('; ') }),
  };
}

/**
 * The table, fitted to `width`; what made a row unexpected is listed under
 * it, numbered, one reason a line, so the table itself stays readable.
 */
export function formatVerdictTable(rows: readonly VerdictRow[], width = 100): string {
  const header = ['model', 'variant', 'states', 'complete', 's', 'verdict', 'violated'];
  const notes: string[] = [];
  const data = rows.map((r) => {
    let verdict = 'as expected';
    if (!r.asExpected) {
      notes.push(`[${notes.length + 1}] ${r.model} / ${r.variant}: ${r.why}`);
      verdict = `UNEXPECTED [${notes.length}]`;
    }
    return [
      r.model,
      r.variant,
      r.result.states.toLocaleString('en'),
      r.result.complete ? 'yes' : `no (${r.result.cutBy})`,
      r.result.seconds.toFixed(1),
      verdict,
      r.violated.join(', ') || '-',
    ];
  });
  const unexpected = rows.filter((r) => !r.asExpected).length;
  const summary = `${rows.length} variants: ${rows.length - unexpected} as expected, ${unexpected} unexpected`;
  const table = formatTable(header, data, width, { min: [6, 10, 6, 8, 3, 11, 12] });
  const details = notes.flatMap((n) => ['', ...wrapCell(n.replace(/, /g, ', '), width)]);
  return [...table, ...details, '', summary].join('\n');
}
