/**
 * The variant and verdict tables of the spec pages (spec/<model id>.md), read
 * with marked's lexer, for the test that keeps them in step with the models'
 * `expect`. A table is
 * - a verdict table when it has a `variant` column and a verdict column: a
 *   `violated…` column (the properties a variant violates; a `holds` column
 *   beside it), a `property` and a `verdict` column (one row per property),
 *   or a free-text `what the explorer finds` column;
 * - a variant table when it has a `variant` column and stands under a heading
 *   that names variants ("### Variants", "## Variants and verdicts").
 * A page without a variant table lists its variants in its verdict tables
 * only (exec-handoff describes its designs in a numbered list): there the
 * verdict tables are its variant tables.
 * Sizes tables (a column per parameter value, `dmas=2`) are neither.
 */
import { readFileSync } from 'node:fs';
import { type Token, type Tokens, lexer } from 'marked';
import type { Model } from '../../explorer/model.ts';

export interface Row {
  /** The variants the row names (backquoted in its variant cell). */
  readonly variants: readonly string[];
  /** Properties the row says are violated, and those it says hold (names found in the cells). */
  readonly violated: readonly string[];
  readonly holds: readonly string[];
  /** The pinned state count, when the row names one variant and one number. */
  readonly states?: number;
  /** The row as written, for messages. */
  readonly text: string;
}

export interface SpecTables {
  readonly variantRows: readonly Row[];
  readonly verdictRows: readonly Row[];
  /** Whether the page has variant tables of its own (else its verdict tables stand for them). */
  readonly ownVariantTables: boolean;
}

const plain = (s: string) => s.replace(/[`*_]/g, '').replace(/\\\|/g, '|').trim();
const column = (header: readonly string[], p: (h: string) => boolean) => header.findIndex((h) => p(h));
const isSizes = (header: readonly string[]) => header.some((h) => /\w=\d/.test(h));

/** The backquoted names in a cell (`a`, `b` (V1)). */
const backquoted = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

/** Property names mentioned in a cell, as whole words. */
function named(cell: string, properties: readonly string[]): string[] {
  const text = plain(cell);
  return properties.filter((p) => new RegExp(`(^|[^A-Za-z0-9])${p}([^A-Za-z0-9]|$)`).test(text));
}

function rowsOf(t: Tokens.Table, properties: readonly string[]): { verdict: boolean; rows: Row[] } {
  const header = t.header.map((h) => plain(h.text).toLowerCase());
  const v = column(header, (h) => h === 'variant');
  const violated = column(header, (h) => h.startsWith('violated'));
  const holds = column(header, (h) => h === 'holds');
  const property = column(header, (h) => h === 'property');
  const verdict = column(header, (h) => h === 'verdict');
  const finds = column(header, (h) => h.startsWith('what the explorer finds'));
  const states = column(header, (h) => h === 'states');
  const isVerdict = violated >= 0 || (property >= 0 && verdict >= 0) || finds >= 0;
  const rows = t.rows.map((r): Row => {
    const cell = (i: number) => (i >= 0 ? r[i].text : '');
    const variants = backquoted(cell(v));
    let bad: string[] = [];
    let good: string[] = [];
    if (violated >= 0) {
      bad = named(cell(violated), properties);
      good = named(cell(holds), properties);
    } else if (property >= 0 && verdict >= 0) {
      const props = named(cell(property), properties);
      if (/violated/i.test(plain(cell(verdict)))) bad = props;
      else if (/\bhold/i.test(plain(cell(verdict)))) good = props;
    } else if (finds >= 0) {
      bad = named(cell(finds), properties);
    }
    const n = plain(cell(states)).replace(/,/g, '');
    return {
      variants,
      violated: bad,
      holds: good,
      ...(variants.length === 1 && /^\d+$/.test(n) && { states: Number(n) }),
      text: `| ${r.map((c) => c.text).join(' | ')} |`,
    };
  });
  return { verdict: isVerdict, rows };
}

/** The tables of one spec page; `properties` are the names to look for (invariants, temporal properties, deadlock). */
export function readSpecTables(path: string, properties: readonly string[]): SpecTables {
  const tokens: Token[] = lexer(readFileSync(path, 'utf8'));
  const variantRows: Row[] = [];
  const verdictRows: Row[] = [];
  let heading = '';
  for (const t of tokens) {
    if (t.type === 'heading') heading = (t as Tokens.Heading).text;
    if (t.type !== 'table') continue;
    const table = t as Tokens.Table;
    const header = table.header.map((h) => plain(h.text).toLowerCase());
    if (!header.includes('variant') || isSizes(header)) continue;
    const { verdict, rows } = rowsOf(table, properties);
    if (verdict) verdictRows.push(...rows);
    if (/variants?\b/i.test(heading)) variantRows.push(...rows);
  }
  const ownVariantTables = variantRows.length > 0;
  return { variantRows: ownVariantTables ? variantRows : verdictRows, verdictRows, ownVariantTables };
}

/** Every property name a variant of the model can report. */
export const propertiesOf = (m: Model): string[] => [
  ...new Set(
    m.variantNames.flatMap((n) => {
      const v = m.variant(n);
      return [...Object.keys(v.invariants), ...Object.keys(v.properties), 'deadlock'];
    }),
  ),
];

/** The disagreements between the page's tables and the model's variants, one line each (none: they agree). */
export function tableProblems(m: Model, t: SpecTables): string[] {
  const problems: string[] = [];
  const known = new Set(m.variantNames);
  for (const r of new Set([...t.variantRows, ...t.verdictRows])) {
    for (const v of r.variants.filter((x) => !known.has(x)))
      problems.push(`a row names '${v}', which is no variant: ${r.text}`);
  }
  for (const name of m.variantNames) {
    const expected = m.variant(name).expect;
    const rows = t.verdictRows.filter((r) => r.variants.includes(name));
    if (!t.variantRows.some((r) => r.variants.includes(name)))
      problems.push(`${name}: no row in the variant table`);
    if (rows.length === 0) {
      problems.push(`${name}: no row in the verdict table`);
      continue;
    }
    const said = [...new Set(rows.flatMap((r) => r.violated))].sort();
    const want = [...(expected?.violated ?? [])].sort();
    if (JSON.stringify(said) !== JSON.stringify(want)) {
      problems.push(
        `${name}: the table says violated [${said.join(', ')}], expect says [${want.join(', ')}]`,
      );
    }
    const contradicted = rows.flatMap((r) => r.holds).filter((p) => want.includes(p));
    if (contradicted.length)
      problems.push(`${name}: the table says ${contradicted.join(', ')} holds, expect says violated`);
    for (const r of rows) {
      if (r.states !== undefined && expected?.states !== undefined && r.states !== expected.states) {
        problems.push(
          `${name}: the table says ${r.states} states, expect pins ${expected.states}: ${r.text}`,
        );
      }
    }
  }
  return problems;
}
