/**
 * The exit-code table (explorer/exit-codes.ts, README "Exit codes"): a
 * search cut short by a resource is never 0, a depth bound the user set is
 * "complete to depth N" and 0, --compare-reductions fails when a reduction
 * changes a verdict; and, with real processes, a reader that goes away
 * (`| head -1` under `set -o pipefail`) never changes the code, and SIGINT
 * or SIGTERM print the partial report and exit 130.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run } from './run-cli.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'vfio-mc.js');
const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-exit-'));
const TRAILS = ['--trail-dir', dir];

afterEach(() => vi.restoreAllMocks());

/** Two counters to 60: no violation within depth 100 (its deadlock is at depth 120), 3,721 states. */
const counters = join(dir, 'counters.ts');
writeFileSync(
  counters,
  `import { countersModel } from '${ROOT}/test/fixtures/counters.ts';\nexport default countersModel(2, 60);\n`,
);

describe('a search cut short never exits 0', () => {
  it('--memory that stops the search: 4, not 0', async () => {
    const r = await run('explore', 'container', '--variant', 'vfio-wait', '--memory', '50M', ...TRAILS);
    expect(r.stdout).toContain('INCOMPLETE: cut off by the memory limit');
    expect(r.code).toBe(4);
  });

  it('a depth the user set is "complete to depth N", 0; --require-complete makes it 4', async () => {
    const r = await run('explore', counters, '--depth', '3', ...TRAILS);
    expect(r.stdout).toContain('complete to depth 3: every state within the depth bound explored');
    expect(r.code).toBe(0);
    expect((await run('explore', counters, '--depth', '3', '--require-complete', ...TRAILS)).code).toBe(4);
  });

  it('the default depth cap and the state cap: 4', async () => {
    const deep = await run('explore', counters, ...TRAILS);
    expect(deep.stdout).toContain('INCOMPLETE: cut off by the default depth bound (100; --depth N sets one)');
    expect(deep.code).toBe(4);
    const capped = await run('explore', counters, '--max-states', '5', ...TRAILS);
    expect(capped.stdout).toContain('INCOMPLETE: cut off by the state bound (5)');
    expect(capped.code).toBe(4);
    // verdicts: no row unexpected, but a search cut short has no verdict to compare.
    const table = await run('verdicts', '--models', counters, '--no-progress');
    expect(table.code).toBe(4);
  });

  it('--help prints the table', async () => {
    const r = await run('explore', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Exit codes:\n +0 {2}every property checked holds over a complete search/);
    expect(r.stdout).toMatch(/\n +4 {2}no violation, but the search was cut short/);
    expect(r.stdout).toMatch(/\n +130 {2}interrupted/);
  });
});

describe('--compare-reductions', () => {
  // Regions of the benchmark model are interchangeable, but these `sometimes` properties single one
  // out: under --symmetry only one order of each orbit is stored, so one of them is never reached.
  // The checked --symmetry refuses such a model (symmetry.test.ts): the unchecked one runs it, and
  // --compare-reductions is what catches it.
  const asym = join(dir, 'asym.ts');
  writeFileSync(
    asym,
    `import { defineModel, sometimes } from '${ROOT}/explorer/model.ts';
import bench from '${ROOT}/explorer/bench/dma-regions.ts';
const v = bench.variant(undefined, { regions: 2, pins: 1 });
export default defineModel({
  id: 'asym',
  machine: v.machine,
  events: v.events,
  invariants: v.invariants,
  symmetry: v.symmetry,
  properties: {
    firstOnly: sometimes((s: any) => s.context.regions[0].mapped && !s.context.regions[1].mapped),
    secondOnly: sometimes((s: any) => !s.context.regions[0].mapped && s.context.regions[1].mapped),
  },
});
`,
  );

  it('verdicts that differ: exit 6, each property and both verdicts named, the unreduced report', async () => {
    const r = await run('explore', asym, '--symmetry=unchecked', '--compare-reductions', ...TRAILS);
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/\n {4}\w+Only: holds without reductions, violated with symmetry\n/);
    expect(r.stdout).toContain("VERDICTS DIFFER: the report above is the unreduced search's");
    // The report is the unreduced search's: all 25 states, both properties reached.
    expect(r.stdout).toMatch(/^asym \/ default {2}\(compiled engine, 1 thread\)\n/);
    expect(r.stdout).toContain('25 distinct states');
    expect(r.stdout).toMatch(/firstOnly +sometimes +holds/);
    expect(r.stdout).toMatch(/secondOnly +sometimes +holds/);
    const json = JSON.parse(
      (await run('explore', asym, '--symmetry=unchecked', '--compare-reductions', '--json')).stdout,
    );
    expect(json.reductions).toEqual([]);
    expect(json.comparison.sameVerdicts).toBe(false);
    expect(json.comparison.rows[0].differ).toEqual([
      expect.objectContaining({ unreduced: 'holds', reduced: 'violated' }),
    ]);
  });
});

describe('a reader that goes away never changes the code', () => {
  it('every subcommand piped into head -1 under set -o pipefail', () => {
    // Two lanes on the two cores; each line is `name code`. The trail the first explore writes is replayed.
    const cli = `node ${BIN}`;
    const lanes = [
      [
        `explore=$(${cli} explore example-locks --variant abba --trail-dir . | head -1 >/dev/null; echo $?)`,
        `replay=$(${cli} replay example-locks.abba.deadlock.trail.json | head -1 >/dev/null; echo $?)`,
        `mermaid=$(${cli} explore example-locks --variant abba --no-trails --mermaid /dev/stdout | head -1 >/dev/null; echo $?)`,
        `mermaiddash=$(${cli} explore example-locks --variant abba --no-trails --mermaid - 2>/dev/null | head -1 >/dev/null; echo $?)`,
        `memory=$(${cli} explore container --variant vfio-wait --memory 50M --no-trails 2>&1 | head -1 >/dev/null; echo $?)`,
        `usage=$(${cli} explore example-locks --depth 0 2>&1 | head -1 >/dev/null; echo $?)`,
      ],
      [
        `walk=$(${cli} walk example-locks --variant abba --seed 3 --no-trails | head -1 >/dev/null; echo $?)`,
        `swarm=$(${cli} swarm example-locks --variant abba --shard 0/1 --budget 2000states 2>/dev/null | head -1 >/dev/null; echo $?)`,
        `${cli} swarm example-locks --variant abba --shard 0/1 --budget 2000states --out shard.json 2>/dev/null`,
        `merge=$(${cli} merge shard.json | head -1 >/dev/null; echo $?)`,
        `verdicts=$(${cli} verdicts --models example-locks --no-progress | head -1 >/dev/null; echo $?)`,
        `paths=$(${cli} paths device-close | head -1 >/dev/null; echo $?)`,
        `list=$(${cli} list | head -1 >/dev/null; echo $?)`,
      ],
    ];
    const script = [
      'set -o pipefail',
      ...lanes.map(
        (cmds, i) =>
          `( ${cmds.join('; ')}; echo ${cmds
            .map((c) => /^(\w+)=/.exec(c)?.[1])
            .filter(Boolean)
            .map((n) => `${n}=$${n}`)
            .join(' ')} ) > lane${i}.txt &`,
      ),
      'wait',
      'cat lane*.txt',
    ].join('\n');
    const r = spawnSync('bash', ['-c', script], {
      cwd: mkdtempSync(join(tmpdir(), 'vfio-mc-pipe-')),
      encoding: 'utf8',
      env: { ...process.env, COLUMNS: '' },
    });
    const codes = Object.fromEntries(
      r.stdout
        .trim()
        .split(/\s+/)
        .map((kv) => kv.split('=')),
    );
    expect(codes, r.stderr).toEqual({
      explore: '1',
      replay: '1',
      mermaid: '1',
      mermaiddash: '1',
      memory: '4',
      usage: '2',
      walk: '1',
      // A shard exits 0 once its report is written, whatever it found; merge judges.
      swarm: '0',
      merge: '1',
      // example-locks' variants are all as expected.
      verdicts: '0',
      paths: '0',
      list: '0',
    });
  });
});

describe('SIGINT and SIGTERM: the partial report, the trails found, exit 130', () => {
  // Three counters to 300 (27 million states): a violation at depth 2, then a long search. The
  // invariant touches a file once the search is well under way, so the test signals a search
  // that runs, not a process still starting.
  const long = join(dir, 'long.ts');
  writeFileSync(
    long,
    `import { writeFileSync } from 'node:fs';
import { defineModel } from '${ROOT}/explorer/model.ts';
import { countersModel } from '${ROOT}/test/fixtures/counters.ts';
const base = countersModel(3, 300).variant();
let checked = 0;
export default defineModel({
  id: 'long',
  machine: base.machine,
  events: base.events,
  invariants: {
    firstNeverTwo: (s: any) => s.context.count[0] !== 2,
    // A violated invariant is not evaluated again: this one, always true, is.
    running: () => {
      if (++checked === 5000) writeFileSync(process.env.MARKER!, '');
      return true;
    },
  },
});
`,
  );

  async function interrupted(signal: NodeJS.Signals, workers: string) {
    const cwd = mkdtempSync(join(tmpdir(), 'vfio-mc-signal-'));
    const marker = join(cwd, 'running');
    const child = spawn(
      process.execPath,
      [BIN, 'explore', long, '--workers', workers, '--depth', '10000', '--trail-dir', cwd],
      { cwd, env: { ...process.env, COLUMNS: '', MARKER: marker } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let waited = 0; !existsSync(marker) && waited < 60_000; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    child.kill(signal);
    const code = await exited;
    return { code, stdout, stderr, trails: readdirSync(cwd).filter((f) => f.endsWith('.trail.json')) };
  }

  it.each([
    ['SIGINT', '1'],
    ['SIGTERM', '2'],
  ] as const)('%s, %s worker(s)', async (signal, workers) => {
    const r = await interrupted(signal, workers);
    expect(r.stderr).toContain(`vfio-mc: ${signal}: stopping; the partial report follows`);
    expect(r.stdout).toMatch(
      /INCOMPLETE: cut off by the interrupt \(SIGINT or SIGTERM\) at depth \d+: a partial report\n +[\d,]+ distinct states, [\d,]+ transitions, depth \d+/,
    );
    expect(r.stdout).toMatch(/firstNeverTwo +invariant +violated/);
    expect(r.stdout).toContain("invariant 'firstNeverTwo' violated after 2 steps (shortest)");
    expect(r.trails).toEqual(['long.default.firstNeverTwo.trail.json']);
    expect(r.code).toBe(130);
  });
});
