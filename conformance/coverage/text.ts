/** The coverage run as text (fits `width` columns, 100 when piped) and the committed summary. */
import { wrapCell } from '../../explorer/text-table.ts';
import { formatFileTable } from './report.ts';
import type { CoverageResult } from './run.ts';

const short = (k: string) => k.replace(/^drivers\/(iommu\/)?/, '');

function list(title: string, items: readonly string[], width: number): string[] {
  if (items.length === 0) return [];
  return wrapCell(`${title}: ${items.join(', ')}`, width - 4).map((l, i) =>
    i === 0 ? `  ${l}` : `      ${l}`,
  );
}

export function formatCoverage(r: CoverageResult, width = 100): string {
  const runs = r.runs.reduce(
    (a, x) => ({
      paths: a.paths + x.paths,
      match: a.match + x.match,
      diverge: a.diverge + x.diverge,
      unreplayable: a.unreplayable + x.unreplayable,
      setup: a.setup + x.setupError,
      steps: a.steps + x.steps,
    }),
    { paths: 0, match: 0, diverge: 0, unreplayable: 0, setup: 0, steps: 0 },
  );
  const lines = [
    `kernel code reached on Linux ${r.kernel} (coverage flavour), ${r.date}; digest ${r.digest}`,
    `models: ${r.runs.length} runs, ${runs.paths} paths (${runs.match} match, ${runs.diverge} diverge, ` +
      `${runs.unreplayable} unreplayable, ${runs.setup} setup errors), ${runs.steps} steps, ${r.seconds.models.toFixed(0)} s`,
    `selftests: iommufd + iommufd_fail_nth, ${r.selftests.passed} passed, ${r.selftests.failed} failed, ` +
      `${r.selftests.skipped} skipped, ${r.seconds.selftests.toFixed(0)} s; gcov ${r.seconds.gcov.toFixed(0)} s`,
    '',
    'lines and branches hit (percent of the instrumented ones):',
    ...formatFileTable(r.files, width),
  ];
  for (const f of r.focus) {
    lines.push('', `${short(f.file)}: functions reached by`);
    lines.push(...list('the selftests only', f.selftestsOnly, width));
    lines.push(...list('the models only', f.modelsOnly, width));
    lines.push(...list('neither', f.neither, width));
    lines.push(...list('both, with lines/branches only the models hit', f.modelsOnlyLines, width));
  }
  lines.push(
    '',
    'citation check (spec/*.md and machine comments against the functions each transition reached):',
  );
  for (const p of r.protocols) {
    const found = p.transitions.flatMap((t) => [
      ...t.citedNotReached.map((k) => `${t.event} (${t.steps} steps) cites ${short(k)}: never reached`),
      ...t.reachedCitedElsewhere.map((k) => `${t.event} reaches ${short(k)}, cited elsewhere, not here`),
    ]);
    const spec = p.specNotReached.map((k) => `spec/${p.model}.md cites ${short(k)}: no step reached it`);
    const unreplayed = p.transitions.filter((t) => t.steps === 0 && t.cites.length > 0).map((t) => t.event);
    lines.push(`  ${p.model}: ${found.length + spec.length} finding(s)`);
    for (const f of [...found, ...spec]) lines.push(...wrapCell(f, width - 4).map((l) => `    ${l}`));
    lines.push(...list('  cite but were never replayed', unreplayed, width));
  }
  return lines.join('\n');
}

/** What is committed (conformance/coverage/summary.json): the run without the per-function rows of every file. */
export function summaryOf(r: CoverageResult): unknown {
  return {
    ...r,
    files: r.files.map(({ file, lines, branches }) => ({ file, lines, branches })),
    protocols: r.protocols.map((p) => ({
      ...p,
      transitions: p.transitions.map(({ uncited, reached, ...t }) => ({
        ...t,
        reached: reached.length,
        uncited: uncited.length,
      })),
    })),
  };
}
