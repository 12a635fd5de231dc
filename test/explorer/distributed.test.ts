/**
 * The distributed search (distributed-bfs.ts) against the one-process one:
 * 2 and 3 processes over a real redis-server started on loopback give the
 * same counts, verdicts and counterexample lengths. `npm test` runs a
 * representative set of variants (a deadlock, invariants, liveness lassos,
 * a 55,000-state search); `npm run test:distributed` (DISTRIBUTED_ALL=1)
 * runs every registered variant. Faults: a node killed mid-run gives a
 * partial report naming it, never a verdict; with checkpoints, a killed and
 * restarted node, or a broker restart, gives the uninterrupted answer.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type Server } from '../../explorer/broker-server.ts';
import { DistributedFault } from '../../explorer/distributed-bfs.ts';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { findModel, registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { exploreDistributed, freshRun, startNode, summary } from './distributed-helpers.ts';

const REPRESENTATIVE = [
  'example-locks/abba',
  'container/vfio-wait',
  'device-close/notify-if-pinned-late',
  'ioas/access-unmap',
  'exec-handoff/change-dma-owner-staged',
];
const all = process.env.DISTRIBUTED_ALL === '1';
const models = await registeredModels();
const cases: [string, string, ResolvedVariant][] = models.flatMap((m) =>
  m.variantNames
    .filter((v) => all || REPRESENTATIVE.includes(`${m.id}/${v}`))
    .map((v) => [`${m.id}/${v}`, m.id, m.variant(v)] as [string, string, ResolvedVariant]),
);

let redis: Server;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(cases)('%s: N processes = one process', (_name, model, variant) => {
  let one: ExploreResult;
  beforeAll(async () => {
    one = await explore(variant, { workers: 1 });
  });
  it.each([2, 3])('%i processes', async (nodes) => {
    const { result, others } = await exploreDistributed(redis.url, model, variant, nodes);
    expect(summary(result)).toEqual(summary(one));
    expect(others.map((o) => o.code)).toEqual(others.map(() => 0));
  });
});

describe.skipIf(all)('faults', () => {
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
    // The surviving node is told the run ended without a verdict.
    expect((await n1.exited).code).toBe(5);
  });

  it('with checkpoints, a killed node restarted by hand: the run resumes and gives the uninterrupted answer', async () => {
    const variant = await v();
    const whole = await explore(variant, { workers: 1 });
    const run = freshRun('resume');
    const file = join(mkdtempSync(join(tmpdir(), 'vfio-mc-dist-')), 'run.ckpt');
    const n1 = startNode(redis.url, BENCH, variant, 1, 3, run);
    let n2 = startNode(redis.url, BENCH, variant, 2, 3, run);
    let killed = false;
    const lines: string[] = [];
    const result = await explore(variant, {
      broker: { url: redis.url, node: 0, nodes: 3, run, log: (l) => lines.push(l) },
      checkpoint: { file, everySeconds: 0, stopRequested: () => false },
      onProgress: (p) => {
        if (p.depth >= 5 && !killed) {
          killed = true;
          n2.child.kill('SIGKILL');
          // as a scheduler would: a new process for node 2
          void n2.exited.then(() => (n2 = startNode(redis.url, BENCH, variant, 2, 3, run)));
        }
      },
    });
    expect(killed).toBe(true);
    expect(
      lines.some((l) => /node 2 failed during level \d+ .*resuming from the checkpoint of level/.test(l)),
    ).toBe(true);
    expect(summary(result)).toEqual(summary(whole));
    expect((await n1.exited).code).toBe(0);
    expect((await n2.exited).code).toBe(0);
  });

  it('with checkpoints, a broker restart mid-run: the run resumes and gives the uninterrupted answer', async () => {
    const variant = await v();
    const whole = await explore(variant, { workers: 1 });
    const run = freshRun('restart');
    const file = join(mkdtempSync(join(tmpdir(), 'vfio-mc-dist-')), 'run.ckpt');
    const n1 = startNode(redis.url, BENCH, variant, 1, 2, run);
    let restarted: Promise<void> | undefined;
    const lines: string[] = [];
    const result = await explore(variant, {
      broker: { url: redis.url, node: 0, nodes: 2, run, log: (l) => lines.push(l) },
      checkpoint: { file, everySeconds: 0, stopRequested: () => false },
      onProgress: (p) => {
        if (p.depth >= 5 && !restarted) restarted = redis.restart();
      },
    });
    await restarted;
    expect(lines.some((l) => /resuming from the checkpoint/.test(l))).toBe(true);
    expect(summary(result)).toEqual(summary(whole));
    expect((await n1.exited).code).toBe(0);
  });
});
