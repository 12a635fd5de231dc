/**
 * The verdict table: every registered model and variant explored at its
 * default bounds, and what was found compared with what the variant declares
 * it should find (`expect`). This is `npm start`, and CI's regression check.
 */
import { explore } from './explore.ts';
import type { Model } from './model.ts';
import type { ExploreResult } from './result.ts';

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

export async function verdictRow(model: Model, variantName: string): Promise<VerdictRow> {
  const variant = model.variant(variantName);
  const result = await explore(variant);
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
  const pinned = variant.expect?.states;
  if (pinned !== undefined && result.states !== pinned) {
    problems.push(`states ${result.states}, pinned ${pinned}`);
  }
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

export function formatVerdictTable(rows: readonly VerdictRow[]): string {
  // The violated list is last: it is the one long column.
  const cols = ['model', 'variant', 'states', 'complete', 'seconds', 'verdict', 'violated'];
  const data = rows.map((r) => [
    r.model,
    r.variant,
    String(r.result.states),
    r.result.complete ? 'yes' : `no (${r.result.cutBy})`,
    r.result.seconds.toFixed(1),
    r.asExpected ? 'as expected' : `UNEXPECTED: ${r.why}`,
    r.violated.join(', ') || '-',
  ]);
  const widths = cols.map((c, i) => Math.max(c.length, ...data.map((d) => d[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const unexpected = rows.filter((r) => !r.asExpected).length;
  const summary = `${rows.length} variants: ${rows.length - unexpected} as expected, ${unexpected} unexpected`;
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...data.map(line), '', summary].join('\n');
}
