/**
 * Swarm shards and their merge (swarm.ts, merge-reports.ts): 1-second
 * shards of the container model's vfio-wait variant, run as `vfio-mc swarm`
 * processes, merged by `vfio-mc merge`, find its deadlock, and the merged
 * trail replays; a shard with a states budget repeats itself; shards of one
 * seed differ; a variant that holds merges to no violation; bad input is a
 * one-line error.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeReports, parseSwarmReport } from '../../cli/merge-reports.ts';
import { findModel } from '../../explorer/registry.ts';
import { parseBudget, runShard, type SwarmReport } from '../../explorer/swarm.ts';
import { confirmTrail, parseTrail } from '../../explorer/trail.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'vfio-mc.js');
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('swarm + merge', () => {
  it('4 shards of 1 second each find the vfio-wait deadlock; the merged shortest trail replays', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-swarm-'));
    const files = [0, 1, 2, 3].map((i) => {
      const out = join(dir, `shard-${i}.json`);
      const r = cli([
        'swarm',
        'container',
        '--variant',
        'vfio-wait',
        '--shard',
        `${i}/4`,
        '--seed',
        '7',
        '--budget',
        '1s',
        '--out',
        out,
      ]);
      expect(r.status, r.stderr).toBe(0);
      return out;
    });
    for (const f of files) expect(JSON.parse(readFileSync(f, 'utf8')).seconds).toBeLessThan(3);
    const merged = cli(['merge', ...files, '--json', '--trail-dir', dir]);
    expect(merged.status).toBe(1);
    const m = JSON.parse(merged.stdout);
    expect(m.shards).toEqual([0, 1, 2, 3]);
    expect(m.properties).toContainEqual({ name: 'deadlock', status: 'violated' });
    const deadlock = m.violations.find((v: { property: string }) => v.property === 'deadlock');
    expect(deadlock.shortest.length).toBeGreaterThanOrEqual(4); // BFS's shortest is 4 steps
    const file = join(dir, 'container.vfio-wait.deadlock.trail.json');
    const t = parseTrail(JSON.parse(readFileSync(file, 'utf8')), file);
    return findModel('container').then((model) => {
      const v = confirmTrail(model.variant('vfio-wait'), t);
      expect(v.mismatches).toEqual([]);
      expect(v.findings.map((f) => f.kind)).toContain('deadlock');
    });
  });

  it('a states budget repeats itself; the shards of one seed differ', async () => {
    const v = (await findModel('container')).variant('vfio-wait');
    const shard = (index: number) =>
      runShard(v, { shard: { index, count: 4 }, seed: 3, budget: { states: 3000 }, check: false });
    const strip = (r: SwarmReport) => ({
      ...r,
      seconds: 0,
      violations: r.violations.map((x) => ({ ...x, foundAfter: 0 })),
    });
    const a = shard(1);
    expect(strip(shard(1))).toEqual(strip(a));
    expect(a.visited).toBe(3000);
    expect(strip(shard(2))).not.toEqual(strip(a));
  });

  it('a variant with no violation merges to "not violated" everywhere, exit 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-swarm-'));
    const files = [0, 1].map((i) => {
      const out = join(dir, `s${i}.json`);
      expect(
        cli([
          'swarm',
          'example-locks',
          '--variant',
          'ordered',
          '--shard',
          `${i}/2`,
          '--budget',
          '500states',
          '--out',
          out,
        ]).status,
      ).toBe(0);
      return out;
    });
    const r = cli(['merge', ...files]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/deadlock\s+not violated/);
    expect(r.stdout).toMatch(/coverage: \d+ of \d+ transitions fired/);
  });

  it('merge refuses reports of different variants, and files that are not reports', async () => {
    const vw = (await findModel('container')).variant('vfio-wait');
    const cur = (await findModel('container')).variant('current');
    const r1 = runShard(vw, { shard: { index: 0, count: 2 }, seed: 1, budget: { states: 50 } });
    const r2 = runShard(cur, { shard: { index: 1, count: 2 }, seed: 1, budget: { states: 50 } });
    expect(() =>
      mergeReports([
        { file: 'a.json', report: r1 },
        { file: 'b.json', report: r2 },
      ]),
    ).toThrow(/b.json is a report of container \/ current/);
    expect(() => parseSwarmReport({ format: 'vfio-mc trail' }, 'x.json')).toThrow(
      'x.json: not a vfio-mc swarm report',
    );
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-swarm-'));
    writeFileSync(join(dir, 'bad.json'), '{');
    const r = cli(['merge', join(dir, 'bad.json')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^vfio-mc: error: .*bad.json/);
  });

  it('--budget and --shard say what they accept', () => {
    expect(parseBudget('1s')).toEqual({ seconds: 1 });
    expect(parseBudget('2m')).toEqual({ seconds: 120 });
    expect(parseBudget('10000states')).toEqual({ states: 10000 });
    expect(() => parseBudget('10')).toThrow(/--budget must be a time/);
    const r = cli(['swarm', 'container', '--shard', '4/4']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--shard must be I\/N with 0 <= I < N/);
  });
});
