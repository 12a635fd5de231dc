/**
 * Running a distributed search in a test: node 0 (the coordinator) in the
 * test's process through explore(), the other nodes as real `vfio-mc
 * explore --broker URL --node I/N` processes, against a redis-server the
 * test started on loopback (explorer/broker-server.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { explore, type ExploreOptions } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import type { ExploreResult } from '../../explorer/result.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'vfio-mc.js');
let runs = 0;

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; stderr: string }>;
}

/** `vfio-mc explore MODEL --variant V --broker URL --node I/N --run RUN` as a process. */
export function startNode(
  url: string,
  model: string,
  variant: ResolvedVariant,
  node: number,
  nodes: number,
  run: string,
  extra: string[] = [],
): NodeProcess {
  const set = Object.entries(variant.params).map(([k, v]) => `${k}=${v}`);
  const child = spawn(
    process.execPath,
    [
      BIN,
      'explore',
      model,
      '--variant',
      variant.name,
      ...(set.length ? ['--set', set.join(',')] : []),
      '--broker',
      url,
      '--node',
      `${node}/${nodes}`,
      '--run',
      run,
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })),
  );
  return { child, exited };
}

/** A unique run name, so tests sharing a broker never meet. */
export const freshRun = (tag: string) => `test-${process.pid}-${++runs}-${tag}`;

/** N processes (this one as node 0) explore `variant` together; every node's exit is checked. */
export async function exploreDistributed(
  url: string,
  model: string,
  variant: ResolvedVariant,
  nodes: number,
  options: ExploreOptions = {},
): Promise<{ result: ExploreResult; others: { code: number | null; stderr: string }[] }> {
  const run = freshRun(`${variant.modelId}-${variant.name}-${nodes}`);
  const others = Array.from({ length: nodes - 1 }, (_, i) =>
    startNode(url, model, variant, i + 1, nodes, run),
  );
  try {
    const result = await explore(variant, { ...options, broker: { url, node: 0, nodes, run } });
    return { result, others: await Promise.all(others.map((o) => o.exited)) };
  } finally {
    for (const o of others) o.child.kill('SIGKILL');
  }
}

/** What must equal between a distributed and a one-process search. */
export const summary = (r: ExploreResult) => ({
  states: r.states,
  transitions: r.transitions,
  depth: r.depth,
  complete: r.complete,
  properties: r.properties.map((p) => [p.name, p.status]),
  neverFired: r.coverage.neverFired,
  neverEnabled: [...r.coverage.neverEnabled].sort(),
  violations: r.violations.map((v) => [v.property, v.kind, v.trace.length, v.cycleStart]),
});
