/**
 * The coverage report: per file and per function, the lines and branches the models' replays
 * hit, the selftests hit, both, neither. Built from the two gcov results of the same build (the
 * same .gcno, so the same lines and branches in the same order).
 */
import { formatTable } from '../../explorer/text-table.ts';
import type { LineHits, SourceFunction, SourceHits } from './gcov.ts';

export interface Tally {
  /** Instrumented lines (or branches). */
  readonly total: number;
  readonly models: number;
  readonly selftests: number;
  readonly both: number;
  /** models + selftests - both */
  readonly union: number;
}

export interface FunctionRow {
  readonly name: string;
  readonly start: number;
  readonly end: number;
  readonly lines: Tally;
  readonly branches: Tally;
}

export interface FileRow {
  readonly file: string;
  readonly lines: Tally;
  readonly branches: Tally;
  readonly functions: readonly FunctionRow[];
  /** Every instrumented line: [line, models' count, selftests' count]. */
  readonly hits: readonly (readonly [number, number, number])[];
}

/** The four files whose gaps spec/conformance.md handles one by one. */
export const FOCUS_FILES = [
  'drivers/iommu/iommufd/ioas.c',
  'drivers/iommu/iommufd/pages.c',
  'drivers/iommu/iommufd/io_pagetable.c',
  'drivers/vfio/vfio_iommu_type1.c',
] as const;

class Counter {
  total = 0;
  models = 0;
  selftests = 0;
  both = 0;
  add(m: boolean, s: boolean) {
    this.total++;
    if (m) this.models++;
    if (s) this.selftests++;
    if (m && s) this.both++;
  }
  tally(): Tally {
    return {
      total: this.total,
      models: this.models,
      selftests: this.selftests,
      both: this.both,
      union: this.models + this.selftests - this.both,
    };
  }
}

const NONE: LineHits = { count: 0, branches: [] };

function tallies(
  lines: readonly number[],
  m: Map<number, LineHits> | undefined,
  s: Map<number, LineHits> | undefined,
): { lines: Tally; branches: Tally } {
  const l = new Counter();
  const b = new Counter();
  for (const n of lines) {
    const a = m?.get(n) ?? NONE;
    const c = s?.get(n) ?? NONE;
    l.add(a.count > 0, c.count > 0);
    const k = Math.max(a.branches.length, c.branches.length);
    for (let i = 0; i < k; i++) b.add((a.branches[i] ?? 0) > 0, (c.branches[i] ?? 0) > 0);
  }
  return { lines: l.tally(), branches: b.tally() };
}

export function fileRows(
  files: readonly string[],
  models: SourceHits,
  selftests: SourceHits,
  functionsOf: (file: string) => readonly SourceFunction[],
  /** The instrumented lines of each file (from either run: the same .gcno). */
  instrumented: (file: string) => readonly number[],
): FileRow[] {
  return files.map((file) => {
    const m = models.get(file);
    const s = selftests.get(file);
    const all = instrumented(file);
    const functions = functionsOf(file)
      .map((f) => ({
        name: f.name,
        start: f.start,
        end: f.end,
        ...tallies(
          all.filter((n) => n >= f.start && n <= f.end),
          m,
          s,
        ),
      }))
      .filter((f) => f.lines.total > 0);
    const hits = all.map((n) => [n, m?.get(n)?.count ?? 0, s?.get(n)?.count ?? 0] as const);
    return { file, ...tallies(all, m, s), functions, hits };
  });
}

export const reachedBy = (f: FunctionRow) => ({
  models: f.lines.models > 0,
  selftests: f.lines.selftests > 0,
});

/**
 * Functions the selftests reach and the models do not, and the other way round; and, finer, the
 * functions in which the models hit lines or branches the selftests never do ("fn +lines/+branches").
 */
export function functionGaps(row: FileRow): {
  selftestsOnly: string[];
  modelsOnly: string[];
  neither: string[];
  modelsOnlyLines: string[];
} {
  const by = row.functions.map((f) => ({ f, ...reachedBy(f) }));
  return {
    selftestsOnly: by.filter((x) => x.selftests && !x.models).map((x) => x.f.name),
    modelsOnly: by.filter((x) => x.models && !x.selftests).map((x) => x.f.name),
    neither: by.filter((x) => !x.models && !x.selftests).map((x) => x.f.name),
    modelsOnlyLines: row.functions
      .filter(
        (f) =>
          f.lines.selftests > 0 && (f.lines.models > f.lines.both || f.branches.models > f.branches.both),
      )
      .map((f) => `${f.name} +${f.lines.models - f.lines.both}/+${f.branches.models - f.branches.both}`),
  };
}

const pct = (n: number, total: number) => (total === 0 ? '-' : `${((100 * n) / total).toFixed(1)}%`);

export function sumTallies(ts: readonly Tally[]): Tally {
  const z = { total: 0, models: 0, selftests: 0, both: 0, union: 0 };
  for (const t of ts) for (const k of Object.keys(z) as (keyof Tally)[]) z[k] += t[k];
  return z;
}

/** The per-file table: lines and branches, models / selftests / union, as percentages of the total. */
export function formatFileTable(rows: readonly FileRow[], width = 100): string[] {
  const short = (f: string) => f.replace(/^drivers\/iommu\//, '').replace(/^drivers\//, '');
  const cells = (r: { lines: Tally; branches: Tally }) => [
    String(r.lines.total),
    pct(r.lines.models, r.lines.total),
    pct(r.lines.selftests, r.lines.total),
    pct(r.lines.union, r.lines.total),
    String(r.branches.total),
    pct(r.branches.models, r.branches.total),
    pct(r.branches.selftests, r.branches.total),
    pct(r.branches.union, r.branches.total),
  ];
  const total = {
    lines: sumTallies(rows.map((r) => r.lines)),
    branches: sumTallies(rows.map((r) => r.branches)),
  };
  return formatTable(
    ['file', 'lines', 'models', 'selftests', 'union', 'branches', 'models', 'selftests', 'union'],
    [...rows.map((r) => [short(r.file), ...cells(r)]), ['all', ...cells(total)]],
    width,
    { sep: ' ', min: [12, 5, 6, 6, 6, 5, 6, 6, 6] },
  );
}
