/**
 * `vfio-mc merge reports/*.json`: the swarm shards' reports (swarm.ts) as
 * one: the union of their coverage, for each property the first violation
 * found (the earliest in its shard's run) and the shortest, and the totals.
 * Reports must be of one model, variant and parameters; a shard that appears
 * twice is counted once (a re-run scheduler job). The merged verdict for a
 * property no shard violated is "not violated": a swarm samples the state
 * space, it does not exhaust it.
 */
import { ModelError } from '../explorer/model.ts';
import { SWARM_FORMAT, type ShardViolation, type SwarmReport } from '../explorer/swarm.ts';

export interface MergedViolation {
  readonly property: string;
  readonly kind: ShardViolation['kind'];
  readonly shortest: ShardViolation & { readonly shard: number };
  readonly first: ShardViolation & { readonly shard: number };
  /** Shards that found it. */
  readonly shards: number;
}

export interface MergedReport {
  readonly model: string;
  readonly variant: string;
  readonly params: Readonly<Record<string, number>>;
  /** The shard count the reports were run with, and the shard indices present. */
  readonly shardCount: number;
  readonly shards: readonly number[];
  readonly missingShards: readonly number[];
  readonly seeds: readonly number[];
  readonly seconds: number;
  readonly visited: number;
  /** The shards' distinct states summed: an upper bound on the distinct states seen in all. */
  readonly distinctSum: number;
  readonly walks: number;
  readonly dfsRuns: number;
  readonly properties: readonly { name: string; status: 'violated' | 'not violated' }[];
  readonly coverage: {
    readonly transitions: number;
    readonly fired: number;
    readonly neverFired: readonly string[];
    readonly neverEnabled: readonly string[];
  };
  readonly violations: readonly MergedViolation[];
}

/** Check that a parsed file is a swarm report; name the file otherwise. */
export function parseSwarmReport(data: any, file: string): SwarmReport {
  if (data?.format !== SWARM_FORMAT) throw new ModelError(`${file}: not a vfio-mc swarm report`);
  if (data.version !== 1)
    throw new ModelError(`${file}: swarm report version ${data.version} is not supported (1 is)`);
  return data as SwarmReport;
}

export function mergeReports(reports: readonly { file: string; report: SwarmReport }[]): MergedReport {
  if (reports.length === 0) throw new ModelError('merge needs at least one swarm report');
  const { report: head, file: headFile } = reports[0];
  const id = (r: SwarmReport) =>
    `${r.model} / ${r.variant} ${JSON.stringify(r.params)}, ${r.shard.count} shards`;
  for (const { file, report } of reports)
    if (id(report) !== id(head))
      throw new ModelError(`${file} is a report of ${id(report)}; ${headFile} is of ${id(head)}`);
  // One report a shard and seed: the first given.
  const byShard = new Map<string, SwarmReport>();
  for (const { report } of reports) {
    const key = `${report.shard.index}:${report.seed}`;
    if (!byShard.has(key)) byShard.set(key, report);
  }
  const all = [...byShard.values()];
  const shards = [...new Set(all.map((r) => r.shard.index))].sort((a, b) => a - b);
  const fired = new Set(all.flatMap((r) => r.coverage.fired));
  const offered = new Map<string, boolean>();
  for (const r of all)
    for (const [type, enabled] of Object.entries(r.coverage.offered))
      offered.set(type, offered.get(type) === true || enabled);
  const violations = mergeViolations(all);
  const violated = new Set(violations.map((v) => v.property));
  return {
    model: head.model,
    variant: head.variant,
    params: head.params,
    shardCount: head.shard.count,
    shards,
    missingShards: Array.from({ length: head.shard.count }, (_, i) => i).filter((i) => !shards.includes(i)),
    seeds: [...new Set(all.map((r) => r.seed))].sort((a, b) => a - b),
    seconds: all.reduce((n, r) => n + r.seconds, 0),
    visited: all.reduce((n, r) => n + r.visited, 0),
    distinctSum: all.reduce((n, r) => n + r.distinct, 0),
    walks: all.reduce((n, r) => n + r.walks, 0),
    dfsRuns: all.reduce((n, r) => n + r.dfsRuns, 0),
    properties: head.properties.map((name) => ({
      name,
      status: violated.has(name) ? 'violated' : 'not violated',
    })),
    coverage: {
      transitions: head.coverage.transitions.length,
      fired: head.coverage.transitions.filter((t) => fired.has(t)).length,
      neverFired: head.coverage.transitions.filter((t) => !fired.has(t)),
      neverEnabled: [...offered].filter(([, e]) => !e).map(([t]) => t),
    },
    violations,
  };
}

/** Per property: the shortest counterexample (ties: the lower shard), and the one found earliest. */
function mergeViolations(reports: readonly SwarmReport[]): MergedViolation[] {
  const byProperty = new Map<string, (ShardViolation & { shard: number })[]>();
  for (const r of reports)
    for (const v of r.violations) {
      const list = byProperty.get(v.property) ?? [];
      list.push({ ...v, shard: r.shard.index });
      byProperty.set(v.property, list);
    }
  return [...byProperty].map(([property, found]) => {
    const shortest = [...found].sort((a, b) => a.length - b.length || a.shard - b.shard)[0];
    const first = [...found].sort((a, b) => a.foundAfter - b.foundAfter || a.shard - b.shard)[0];
    return {
      property,
      kind: shortest.kind,
      shortest,
      first,
      shards: new Set(found.map((f) => f.shard)).size,
    };
  });
}

export function formatMerged(m: MergedReport): string {
  const n = (x: number) => x.toLocaleString('en');
  const lines = [
    `${m.model} / ${m.variant}: swarm of ${m.shards.length} of ${m.shardCount} shards (seeds ${m.seeds.join(', ')}), ${m.seconds.toFixed(1)} s in all`,
    `  ${n(m.visited)} states visited, ${n(m.distinctSum)} distinct in the shards' own counts; ${n(m.walks)} walks, ${n(m.dfsRuns)} depth-first runs`,
  ];
  if (m.missingShards.length > 0) lines.push(`  missing shards: ${m.missingShards.join(', ')}`);
  lines.push(
    `  coverage: ${m.coverage.fired} of ${m.coverage.transitions} transitions fired in some shard` +
      (m.coverage.neverFired.length ? `; never: ${m.coverage.neverFired.join(', ')}` : ''),
  );
  lines.push('');
  const width = Math.max(8, ...m.properties.map((p) => p.name.length));
  lines.push(`  ${'property'.padEnd(width)}  verdict`);
  for (const p of m.properties) {
    const v = m.violations.find((x) => x.property === p.name);
    const how = v
      ? `violated: shortest ${v.shortest.length} steps (shard ${v.shortest.shard}), first found after ${v.first.foundAfter.toFixed(2)} s (shard ${v.first.shard}, ${v.first.length} steps); ${v.shards} shard${v.shards === 1 ? '' : 's'}`
      : 'not violated (a swarm samples; it does not exhaust)';
    lines.push(`  ${p.name.padEnd(width)}  ${how}`);
  }
  return lines.join('\n');
}
