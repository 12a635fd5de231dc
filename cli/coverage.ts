/**
 * `vfio-mc coverage [--json] [--html FILE] [--out FILE] [--summary FILE] [--only RUNS] [--no-selftests]`
 * (and `npm run coverage`, which writes the committed summary): builds or reuses the coverage
 * kernel, runs the models' replays and the selftests on it, prints the per-file table and the
 * gap and citation lists. Exit 0 when every replayed path fits the model, 1 when one diverged
 * (the coverage is then of a run the models do not describe), 2 on a usage or setup error.
 */
import { writeFileSync } from 'node:fs';
import { checkWritableFile, print } from './output.ts';
import { EXIT } from '../explorer/exit-codes.ts';
import { ModelError } from '../explorer/model.ts';
import { outputWidth } from '../explorer/text-table.ts';
import { ensureCoverageKernel } from '../conformance/kernel/coverage.ts';
import { coveragePlans, planName } from '../conformance/coverage/replays.ts';
import { readJsonFile } from '../explorer/json-file.ts';
import {
  analyseCoverage,
  collectCoverage,
  type CoverageResult,
  type RawCoverage,
} from '../conformance/coverage/run.ts';
import { formatCoverage, summaryOf } from '../conformance/coverage/text.ts';

export interface CoverageCliOptions {
  json?: boolean;
  html?: string;
  out?: string;
  summary?: string;
  raw?: string;
  fromRaw?: string;
  only?: string;
  selftests?: boolean;
  progress?: boolean;
}

export async function cmdCoverage(o: CoverageCliOptions): Promise<number> {
  for (const [f, opt] of [
    [o.html, '--html'],
    [o.out, '--out'],
    [o.summary, '--summary'],
    [o.raw, '--raw'],
  ] as const)
    if (f) checkWritableFile(f, opt);
  const names = coveragePlans().map(planName);
  const only = o.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((n) => !names.includes(n)) ?? [];
  if (unknown.length)
    throw new ModelError(`--only: no run ${unknown.join(', ')} (runs: ${names.join(', ')})`);
  if (o.fromRaw && (only || o.selftests === false || o.raw))
    throw new ModelError('--from-raw analyses a run again: not with --only, --no-selftests or --raw');
  if (o.summary && (only || o.selftests === false))
    throw new ModelError('--summary is the whole run: not with --only or --no-selftests');
  const log = (m: string) => {
    if (o.progress !== false && !o.json) process.stderr.write(`${m}\n`);
  };
  const started = performance.now();
  let result: CoverageResult;
  let sourceDir: string;
  try {
    const build = await ensureCoverageKernel({ log, progress: o.progress !== false && !o.json });
    sourceDir = build.source.dir;
    let raw: RawCoverage;
    if (o.fromRaw) {
      raw = (await readJsonFile(o.fromRaw)) as RawCoverage;
      if (raw?.format !== 'vfio-mc/coverage-raw@1')
        throw new ModelError(`--from-raw ${o.fromRaw}: not a raw coverage file (vfio-mc coverage --raw)`);
    } else {
      raw = await collectCoverage({
        build,
        log,
        ...(only && { only }),
        ...(o.selftests === false && { selftests: false }),
      });
      if (o.raw) writeFileSync(o.raw, JSON.stringify(raw));
    }
    if (o.summary && (raw.only || !raw.selftests))
      throw new ModelError('--summary is the whole run: this raw file is of a partial one');
    result = await analyseCoverage(raw, build, log);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError(`coverage: ${(e as Error).message}`);
  }
  log(`coverage run took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (o.out) writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
  if (o.summary) writeFileSync(o.summary, `${JSON.stringify(summaryOf(result), null, 2)}\n`);
  if (o.html) {
    const { coverageHtml } = await import('../view/report/coverage-report.tsx');
    writeFileSync(o.html, coverageHtml(result, sourceDir));
  }
  print(o.json ? JSON.stringify(result, null, 2) : formatCoverage(result, outputWidth()));
  return result.runs.some((r) => r.diverge > 0) ? EXIT.violation : EXIT.ok;
}
