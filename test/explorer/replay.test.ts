/**
 * Trails and `vfio-mc replay`: every counterexample explore finds is written
 * as a trail file that replay accepts; replay judges a trail on its own
 * (every invariant after every step, deadlock at the end, a liveness lasso's
 * cycle), uses the variant recorded in it, compares the recorded results,
 * and answers 1 (violation confirmed), 0 (replays cleanly) or 2 (does not
 * replay).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.ts';

const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-replay-'));
const TRANSIENT = join(import.meta.dirname, '../fixtures/transient.ts');
const CLOSE_WAIT = join(import.meta.dirname, '../fixtures/close-wait-model.ts');

async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const write = (name: string, data: unknown) => {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(data));
  return file;
};

const inc = (i: number) => ({ type: 'Inc', i });

describe('replay checks every state, not only the last', () => {
  it('an invariant broken at step 4 and repaired at step 5 is a confirmed violation (exit 1)', async () => {
    const file = write('transient.json', [inc(1), inc(1), inc(0), inc(0), inc(0)]);
    const r = await run('replay', TRANSIENT, file);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("confirmed: invariant 'firstNeverTwo' violated after step 4");
  });

  it('a trace that never breaks it replays cleanly (exit 0)', async () => {
    const file = write('clean.json', [inc(0), inc(1), inc(1)]);
    const r = await run('replay', TRANSIENT, file);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('replays cleanly');
  });
});

describe('trails written by explore, replayed', () => {
  it('the abba deadlock: written, named in the report, confirmed as a deadlock with the waits', async () => {
    const e = await run('explore', 'example-locks', '--variant', 'abba', '--trail-dir', dir, '--no-progress');
    expect(e.code).toBe(1);
    const trail = join(dir, 'example-locks.abba.deadlock.trail.json');
    expect(e.stdout).toContain(`trail: ${trail}\n  replay it: vfio-mc replay ${trail}`);
    // The variant comes from the trail: on the default variant ('ordered') thread B's first lock is l1.
    const r = await run('replay', trail);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^example-locks \/ abba: 2 steps replayed/);
    expect(r.stdout).toContain('confirmed: deadlock after step 2');
    expect(r.stdout).toMatch(/threadA {2}in mutex_lock\(l2\), held by threadB/);
    expect(r.stdout).toContain('the trail records no results to compare');
  });

  it('--json carries the verdict', async () => {
    const trail = join(dir, 'example-locks.abba.deadlock.trail.json');
    const r = await run('replay', trail, '--json');
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ model: 'example-locks', variant: 'abba', verdict: 'violation' });
    expect(j.findings).toEqual([{ property: 'deadlock', kind: 'deadlock', step: 2 }]);
  });

  it('a recorded result the model no longer predicts: does not replay (exit 2), and says where', async () => {
    await run(
      'explore',
      'machines/container.ts',
      '--variant',
      'vfio-wait',
      '--trail-dir',
      dir,
      '--no-progress',
    );
    const file = join(dir, 'container.vfio-wait.deadlock.trail.json');
    const t = JSON.parse(readFileSync(file, 'utf8'));
    const k = t.steps.findIndex((s: { result?: string }) => s.result === '0');
    t.steps[k].result = 'EBUSY';
    const clean = await run('replay', file);
    expect(clean.stdout).toMatch(/all \d+ recorded results match the model/);
    const r = await run('replay', write('edited.trail.json', t));
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`result differs at step ${k + 1}`);
    expect(r.stdout).toContain('the trail says EBUSY, the model gives 0');
  });

  it('--variant replays a counterexample on another design: the fix blocks it (exit 2, not accepted)', async () => {
    const trail = join(dir, 'example-locks.abba.deadlock.trail.json');
    const r = await run('replay', trail, '--variant', 'ordered');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/step 2, event 'ThreadBTakeFirst' .* is not accepted/);
  });

  it('a liveness lasso is confirmed: the run stops where no fair actor can move', async () => {
    const e = await run('explore', CLOSE_WAIT, '--trail-dir', dir, '--no-progress');
    expect(e.code).toBe(1);
    const r = await run('replay', join(dir, 'close-wait.default.everyCloseCompletes.trail.json'));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/confirmed: liveness .*stops in a state where no fair actor is enabled/);
  });
});
