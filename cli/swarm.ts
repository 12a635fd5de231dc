/**
 * The command line's `swarm` and `merge` (swarm.ts, merge-reports.ts): a
 * shard writes its JSON report (to --out, else standard output) and exits 0
 * once it has, whatever it found, so that a scheduler retries only shards
 * that failed to run; `merge` judges: 1 when a shard found a violation.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { checkWritableDir, checkWritableFile, print } from './output.ts';
import { EXIT } from '../explorer/exit-codes.ts';
import { readJsonFile } from '../explorer/json-file.ts';
import { formatMerged, mergeReports, parseSwarmReport } from './merge-reports.ts';
import { ModelError, type ResolvedVariant } from '../explorer/model.ts';
import { isModelPath } from '../explorer/registry.ts';
import { type Budget, parseBudget, runShard } from '../explorer/swarm.ts';
import { trailName } from '../explorer/trail.ts';

/** `--shard I/N`: this is shard I of N. */
export function shardOption(raw: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(raw);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count)
    throw new InvalidArgumentError(`--shard must be I/N with 0 <= I < N (e.g. 3/8), got '${raw}'`);
  return { index, count };
}

export function budgetOption(raw: string): Budget {
  try {
    return parseBudget(raw);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export async function cmdSwarm(
  target: string,
  variant: ResolvedVariant,
  o: Record<string, any>,
): Promise<number> {
  if (o.out) checkWritableFile(o.out, '--out');
  const report = runShard(variant, {
    shard: o.shard,
    seed: o.seed,
    budget: o.budget,
    depth: o.depth,
    check: o.check,
    ...(isModelPath(target) && { modelFile: target }),
  });
  const text = JSON.stringify(report, null, 2);
  if (o.out) writeFileSync(o.out, `${text}\n`);
  else print(text);
  const found = report.violations.map((v) => `${v.property} (${v.length} steps)`).join(', ');
  process.stderr.write(
    `vfio-mc: shard ${report.shard.index}/${report.shard.count} of ${report.model}/${report.variant}: ` +
      `${report.visited.toLocaleString('en')} states visited in ${report.seconds.toFixed(1)} s; ` +
      `${found ? `violations: ${found}` : 'no violation'}${o.out ? `; report: ${o.out}` : ''}\n`,
  );
  return EXIT.ok;
}

export async function cmdMerge(files: string[], o: Record<string, any>): Promise<number> {
  const dir = o.trailDir === undefined ? undefined : resolve(o.trailDir);
  if (dir) checkWritableDir(dir, '--trail-dir');
  const reports = [];
  for (const file of files) reports.push({ file, report: parseSwarmReport(await readJsonFile(file), file) });
  const m = mergeReports(reports);
  if (dir) {
    for (const v of m.violations) {
      const file = join(dir, trailName(m.model, m.variant, v.property));
      writeFileSync(file, `${JSON.stringify(v.shortest.trail, null, 2)}\n`);
    }
  }
  if (o.json) print(JSON.stringify(m, null, 2));
  else {
    print(formatMerged(m));
    if (dir && m.violations.length > 0)
      print(`\nthe shortest trail of each violation is in ${dir}; replay one: vfio-mc replay FILE`);
  }
  if (m.violations.length > 0) return EXIT.violation;
  if (m.shards.length === 0) throw new ModelError('no shard report');
  return EXIT.ok;
}
