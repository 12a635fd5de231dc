/**
 * `npm run test:distributed` (vitest.distributed.config.ts): every registered
 * variant of at most SMALL states (53 of the 73, every model and every kind of
 * verdict) explored by 2 processes over a loopback redis-server gives the
 * one-process counts, verdicts and counterexample lengths (3 processes, and a
 * 55,000-state search, are in npm test's representative set:
 * distributed.test.ts; every variant at 2 and 3 processes was over 40 minutes
 * of CI on two cores); and faults
 * with checkpoints: a node killed mid-run and restarted by hand, or the
 * broker restarted mid-run, and the run resumes from its last checkpoint to
 * the uninterrupted answer. (npm test runs a representative subset and the
 * kill test: distributed.test.ts.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type Server } from '../../explorer/broker-server.ts';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { findModel, registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { exploreDistributed, freshRun, startNode, summary } from './distributed-helpers.ts';

const SMALL = 25_000;
const models = await registeredModels();
const cases: [string, string, ResolvedVariant][] = models
  .flatMap((m) =>
    m.variantNames.map((v) => [`${m.id}/${v}`, m.id, m.variant(v)] as [string, string, ResolvedVariant]),
  )
  .filter(([, , v]) => (v.expect?.states ?? 0) <= SMALL);

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
  it.each([2])('%i processes', async (nodes) => {
    const { result, others } = await exploreDistributed(redis.url, model, variant, nodes);
    expect(summary(result)).toEqual(summary(one));
    expect(others.map((o) => o.code)).toEqual(others.map(() => 0));
  });
});

describe('faults, with checkpoints', () => {
  // 117,649 states over 13 levels: long enough to fail in the middle.
  const BENCH = 'explorer/bench/dma-regions.ts';
  const v = async () => (await findModel(BENCH)).variant(undefined, { regions: 6 });

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
