/**
 * The distributed search (distributed-bfs.ts) against the one-process one:
 * 2 and 3 processes over a real redis-server started on loopback give the
 * same counts, verdicts and counterexample lengths, on a representative
 * set of variants (a deadlock, invariants, liveness lassos, a 55,000-state
 * search); and the kill test: a node killed mid-run gives a partial report
 * naming it, never a verdict. `npm run test:distributed` runs every
 * registered variant, and the resumes (distributed-all.slow.ts).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type Server } from '../../explorer/broker-server.ts';
import { DistributedFault, formatFault } from '../../explorer/distributed-bfs.ts';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { findModel, registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { exploreDistributed, freshRun, startNode, summary } from './distributed-helpers.ts';

/** npm test: [variant, process counts]; a deadlock, invariants and liveness lassos, a 55,000-state search. */
const REPRESENTATIVE: Record<string, number[]> = {
  'example-locks/abba': [2, 3],
  'container/vfio-wait': [3],
  'ioas/access-unmap': [2],
  // levels big enough that a partition done expanding must take in batches before 'drain'
  'container/close-flag': [2],
};
const models = await registeredModels();
const cases: [string, string, ResolvedVariant, number][] = models.flatMap((m) =>
  m.variantNames.flatMap((v) =>
    (REPRESENTATIVE[`${m.id}/${v}`] ?? []).map(
      (n) => [`${m.id}/${v}`, m.id, m.variant(v), n] as [string, string, ResolvedVariant, number],
    ),
  ),
);

let redis: Server;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const one = new Map<string, ExploreResult>();
describe.each(cases)('%s: %i processes = one process', (name, model, variant, nodes) => {
  it('same counts, verdicts and counterexample lengths', async () => {
    if (!one.has(name)) one.set(name, await explore(variant, { workers: 1 }));
    const { result, others } = await exploreDistributed(redis.url, model, variant, nodes);
    expect(summary(result)).toEqual(summary(one.get(name)!));
    expect(others.map((o) => o.code)).toEqual(others.map(() => 0));
  });
});

it('--symmetry: node 0 tells the nodes, and 2 processes store the orbits one process stores', async () => {
  const variant = (await findModel('explorer/bench/dma-regions.ts')).variant(undefined, { regions: 4 });
  const one = await explore(variant, { workers: 1, symmetry: true });
  const { result } = await exploreDistributed(redis.url, 'explorer/bench/dma-regions.ts', variant, 2, {
    symmetry: true,
  });
  expect(result.reductions).toEqual(['symmetry']);
  expect(summary(result)).toEqual(summary(one));
  expect(result.states).toBeLessThan(5 ** 4);
});

it('--view: node 0 tells the nodes, and 2 processes store the views one process stores', async () => {
  const variant = (await findModel('container')).variant('vfio-wait');
  const one = await explore(variant, { workers: 1, view: true });
  const { result, others } = await exploreDistributed(redis.url, 'container', variant, 2, { view: true });
  expect(result.reductions).toEqual(['view']);
  // Violations and liveness lassos too: their traces are found among views and replayed concretely.
  expect(summary(result)).toEqual(summary(one));
  expect(result.states).toBe(20_293); // the projection view (explorer/README.md, View): 54,695 states unreduced
  expect(others.map((o) => o.code)).toEqual([0]);
});

describe('faults', () => {
  // 117,649 states over 13 levels: long enough to kill a node in the middle.
  const BENCH = 'explorer/bench/dma-regions.ts';
  const v = async () => (await findModel(BENCH)).variant(undefined, { regions: 6 });

  it('a node killed mid-run: a partial report naming it and what was lost, never a verdict', async () => {
    const variant = await v();
    const run = freshRun('kill');
    const n1 = startNode(redis.url, BENCH, variant, 1, 3, run);
    const n2 = startNode(redis.url, BENCH, variant, 2, 3, run);
    let killedAt = -1;
    const outcome = explore(variant, {
      broker: { url: redis.url, node: 0, nodes: 3, run },
      onProgress: (p) => {
        if (p.depth >= 4 && killedAt < 0) {
          killedAt = p.depth;
          n2.child.kill('SIGKILL');
        }
      },
    });
    const e = await outcome.then(
      () => undefined,
      (x) => x,
    );
    expect(e).toBeInstanceOf(DistributedFault);
    const r = (e as DistributedFault).report;
    expect(r.node).toBe(2);
    expect(r.reason).toMatch(/no heartbeat/);
    expect(r.level).toBeGreaterThan(killedAt);
    expect(r.states).toBeLessThan(117_649);
    expect(r.lostStates).toBeGreaterThan(0);
    const text = formatFault(r);
    expect(text).toMatch(/^vfio-mc: error: the distributed search lost node 2 of 3 during level \d+/);
    expect(text).toMatch(/no verdict/);
    expect(text).toMatch(/lost: node 2's partition \([\d,]+ states\)/);
    // The surviving node is told the run ended without a verdict.
    expect((await n1.exited).code).toBe(4);
  });
});

describe('the command line', () => {
  const BIN = join(import.meta.dirname, '..', '..', 'bin', 'vfio-mc.js');
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

  it('node 0 prints the report and its exit code; node 1 exits 0', async () => {
    const variant = (await findModel('example-locks')).variant('abba');
    const run = freshRun('cli');
    const n1 = startNode(redis.url, 'example-locks', variant, 1, 2, run);
    const r0 = spawnSync(
      process.execPath,
      [
        BIN,
        'explore',
        'example-locks',
        '--variant',
        'abba',
        '--broker',
        redis.url,
        '--node',
        '0/2',
        '--run',
        run,
        '--no-trails',
      ],
      { encoding: 'utf8' },
    );
    expect(r0.status).toBe(1);
    expect(r0.stdout).toMatch(/21 distinct states, 22 transitions/);
    expect(r0.stdout).toMatch(/deadlock after 2 steps \(shortest\)/);
    expect((await n1.exited).code).toBe(0);
  });

  it('bad options are one-line errors, exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['--broker', 'nats://127.0.0.1:4222', '--node', '0/2'], /--broker: only Redis is supported/],
      [['--broker', 'redis://127.0.0.1:6379'], /--broker needs --node I\/N/],
      [['--node', '0/2'], /--node and --run need --broker URL/],
      [['--broker', 'redis://127.0.0.1:6379', '--node', '3/3'], /--node must be I\/N with 0 <= I < N/],
    ];
    for (const [args, message] of cases) {
      const r = cli(['explore', 'example-locks', ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
