/**
 * `npm run bench`: the explorer against Spin on the same model, in the same
 * run, so the ratios mean something on a noisy shared machine. Every row is
 * a whole process, measured by /usr/bin/time (wall time, peak RSS):
 *
 * - vfio-mc with 1 worker and with all workers, on the benchmark model
 *   (explorer/bench/dma-regions.ts, 7 regions: 823,543 states);
 * - Spin 6.5 on its Promela twin (explorer/bench/spin.ts), -DNOREDUCE -DSAFETY;
 * - the naive xstate BFS (transition() and JSON keys), at 5 regions;
 * - vfio-mc at 8 regions (5,764,801 states) for the memory a state costs;
 * - the container model at --set dmas=3 and dmas=4, where it has that parameter,
 *   and with --view at dmas=4 and dmas=5;
 * - the reductions (--compare-reductions) on container, device-close and ioas at
 *   their defaults: states and wall time unreduced and under every combination of
 *   the reductions the model declares (footprints checked on every step, as by default);
 * - vfio-mc as N processes over a loopback redis-server (explorer/bench/distributed.ts):
 *   its overhead against N worker threads, and the bytes through the broker a state.
 *
 * State counts are checked equal. The targets of issue "Exhaustive runs at
 * realistic sizes" are printed met or with the gap, and a CPU profile of the
 * 1-worker run says where the time goes.
 *
 * Usage: tsx explorer/bench.ts [--regions K] [--big-regions K] [--quick]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { expectedStates } from './bench/dma-regions.ts';
import { distributedRun } from './bench/distributed.ts';
import { buildPan, parsePan, spinVersion } from './bench/spin.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'vfio-mc.js');
const MODEL = join(ROOT, 'explorer', 'bench', 'dma-regions.ts');

const { values } = parseArgs({
  options: {
    regions: { type: 'string', default: '7' },
    'big-regions': { type: 'string', default: '8' },
    'naive-regions': { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
  },
});
const regions = Number(values.regions);
const big = Number(values['big-regions']);
const naiveRegions = Number(values['naive-regions']);
const cores = availableParallelism();

interface Row {
  name: string;
  states: number;
  wall: number;
  rssMB: number;
  note?: string;
}

/** Run a command as a whole process under /usr/bin/time -v: its output, wall seconds and peak RSS. */
function measured(
  argv: string[],
  cwd = ROOT,
): { stdout: string; wall: number; rssMB: number; status: number | null } {
  const r = spawnSync('/usr/bin/time', ['-v', ...argv], { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
  const field = (re: RegExp) => re.exec(r.stderr)?.[1];
  const clock = field(/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/) ?? '0';
  const wall = clock.split(':').reduce((t, part) => t * 60 + Number(part), 0);
  const rssMB = Number(field(/Maximum resident set size \(kbytes\): (\d+)/) ?? 0) / 1024;
  if (r.status !== 0 && r.status !== 1) process.stderr.write(r.stderr.slice(-2000));
  return { stdout: r.stdout, wall, rssMB, status: r.status };
}

function vfioMc(name: string, model: string, set: string, workers: number, extra: string[] = []): Row {
  const m = measured([
    process.execPath,
    BIN,
    'explore',
    model,
    '--set',
    set,
    '--workers',
    String(workers),
    '--no-check',
    '--no-trails',
    '--no-progress',
    '--json',
    // past the default bound of a million states: the big rows are at 5.7 million
    '--max-states',
    String(100_000_000),
    ...extra,
  ]);
  const j = JSON.parse(m.stdout);
  return {
    name,
    states: j.states,
    wall: m.wall,
    rssMB: m.rssMB,
    note: j.complete ? undefined : 'incomplete',
  };
}

function spin(states: number): Row | string {
  const version = spinVersion();
  if (!version)
    return 'Spin is not installed (Debian package `spin`: bash explorer/bench/setup.sh installs it)';
  const pan = buildPan(regions, 2, states);
  try {
    const m = measured(pan.argv, pan.dir);
    const p = parsePan(m.stdout);
    return {
      name: `Spin (${version.replace(/^Spin Version /, '').split(' --')[0]})`,
      states: p.states,
      wall: m.wall,
      rssMB: m.rssMB,
    };
  } finally {
    rmSync(pan.dir, { recursive: true, force: true });
  }
}

function naive(): Row {
  const m = measured([
    process.execPath,
    '--import',
    'tsx',
    join(ROOT, 'explorer', 'bench', 'naive-bfs.ts'),
    String(naiveRegions),
  ]);
  const j = JSON.parse(m.stdout);
  return {
    name: `naive xstate BFS (${naiveRegions} regions)`,
    states: j.states,
    wall: m.wall,
    rssMB: m.rssMB,
  };
}

/** The top functions by self time in a CPU profile (node --cpu-prof). */
function profileTop(dir: string, n: number): string[] {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return ['(no profile written)'];
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map<number, any>(p.nodes.map((x: any) => [x.id, x]));
  const self = new Map<string, number>();
  p.samples.forEach((id: number, i: number) => {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop() || ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + p.timeDeltas[i]);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `  ${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`);
}

const rate = (r: Row) => r.states / r.wall;
const fmt = (n: number) => Math.round(n).toLocaleString('en');

function table(rows: Row[], spinRow: Row | undefined): void {
  const header = ['run', 'states', 'wall s', 'states/s', 'peak RSS MB', 'B/state', 'vs Spin'];
  const data = rows.map((r) => [
    r.name + (r.note ? ` (${r.note})` : ''),
    fmt(r.states),
    r.wall.toFixed(1),
    fmt(rate(r)),
    fmt(r.rssMB),
    fmt((r.rssMB * 2 ** 20) / r.states),
    spinRow ? `${(rate(r) / rate(spinRow)).toFixed(2)}x` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...data.map((d) => d[i].length)));
  for (const line of [header, widths.map((w) => '-'.repeat(w)), ...data]) {
    console.log(line.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  }
}

const want = expectedStates(regions, 2);
console.log(`benchmark: dma-regions, ${regions} regions, 2 pins: ${fmt(want)} states; ${cores} cores`);
const one = vfioMc('vfio-mc, 1 worker', MODEL, `regions=${regions}`, 1);
const all = vfioMc(`vfio-mc, ${cores} workers`, MODEL, `regions=${regions}`, cores);
const sp = spin(want);
const nv = naive();
const rows = [one, all, ...(typeof sp === 'string' ? [] : [sp]), nv];
const spinRow = typeof sp === 'string' ? undefined : sp;
const mismatched = rows.filter((r) => r !== nv && r.states !== want);
if (mismatched.length || nv.states !== expectedStates(naiveRegions, 2)) {
  console.error(`bench: state counts differ: ${[...rows].map((r) => `${r.name} ${r.states}`).join(', ')}`);
  process.exit(1);
}
console.log('');
table(rows, spinRow);
if (typeof sp === 'string') console.log(`\nno Spin row: ${sp}`);

// The same search by `cores` processes over a loopback Redis server, against `cores` threads.
const dist = await distributedRun(BIN, MODEL, `regions=${regions}`, cores, (argv) => measured(argv));
const distRow: Row = {
  name: `vfio-mc, ${cores} processes over Redis`,
  states: dist.states,
  wall: dist.wall,
  rssMB: dist.rssMB,
};
if (dist.states !== want) {
  console.error(`bench: the distributed search found ${dist.states} states, not ${want}`);
  process.exit(1);
}
console.log(`\ndistributed: ${cores} processes over a loopback redis-server (peak RSS: node 0's)`);
table([all, distRow], undefined);
console.log(
  `  overhead against ${cores} worker threads: ${(dist.wall / all.wall).toFixed(2)}x the wall time; ` +
    `${fmt(dist.bytes / dist.states)} bytes through the broker a state (${fmt(dist.bytes / 2 ** 20)} MB in all)`,
);

const bigRows: Row[] = [];
if (!values.quick) {
  console.log(`\nmemory: ${big} regions, ${fmt(expectedStates(big, 2))} states`);
  bigRows.push(vfioMc(`vfio-mc, 1 worker, ${big} regions`, MODEL, `regions=${big}`, 1));
  bigRows.push(vfioMc(`vfio-mc, ${cores} workers, ${big} regions`, MODEL, `regions=${big}`, cores));
  table(bigRows, undefined);
  const containerRows: Row[] = [];
  const list = spawnSync(process.execPath, [BIN, 'list', '--json'], { cwd: ROOT, encoding: 'utf8' });
  const container = (JSON.parse(list.stdout) as { id: string; params: Record<string, unknown> }[]).find(
    (m) => m.id === 'container',
  );
  if (container && 'dmas' in container.params) {
    for (const dmas of [3, 4]) {
      containerRows.push(
        vfioMc(`container --set dmas=${dmas}, ${cores} workers`, 'container', `dmas=${dmas}`, cores),
      );
    }
    // The view reduction at the sizes of issue "State-space reductions": dmas=4 against the row above, and dmas=5.
    for (const dmas of [4, 5]) {
      containerRows.push(
        vfioMc(`container --set dmas=${dmas} --view, ${cores} workers`, 'container', `dmas=${dmas}`, cores, [
          '--view',
        ]),
      );
    }
    console.log('\ncontainer (variant current, every property checked)');
    table(containerRows, undefined);
  } else console.log('\ncontainer: the model has no parameter `dmas`');
  bigRows.push(...containerRows);
}

/** --compare-reductions on a registered model at its defaults: one row per reduction it declares. */
function reductions(model: string): string[] {
  const m = measured([
    process.execPath,
    BIN,
    'explore',
    model,
    '--por',
    '--compare-reductions',
    '--workers',
    '1',
    '--no-trails',
    '--no-progress',
    '--json',
  ]);
  const c = JSON.parse(m.stdout).comparison;
  return [
    `  ${model.padEnd(13)} unreduced ${fmt(c.states.unreduced).padStart(8)} states ${c.seconds.unreduced.toFixed(1).padStart(6)} s`,
    ...c.rows.map(
      (r: { reductions: string[]; states: number; factor: number; seconds: number; sameVerdicts: boolean }) =>
        `  ${''.padEnd(13)} ${r.reductions.join('+').padEnd(9)} ${fmt(r.states).padStart(8)} states ${r.seconds
          .toFixed(1)
          .padStart(6)} s  ${r.factor.toFixed(2)}x fewer${r.sameVerdicts ? '' : '  VERDICTS DIFFER'}`,
    ),
  ];
}

console.log('\nreductions (default variant and parameters, 1 worker, footprints and views checked):');
for (const model of ['container', 'device-close', 'ioas'])
  for (const line of reductions(model)) console.log(line);

if (!values.quick) {
  // The view at the largest sizes the parameters issue reached (container's dmas=4 row is above).
  console.log(`\nthe view at larger sizes (default variant, ${cores} workers):`);
  for (const [model, set] of [
    ['device-close', 'dmas=4'],
    ['ioas', 'areas=4'],
  ]) {
    const plain = vfioMc(`${model} --set ${set}`, model, set, cores);
    const viewed = vfioMc(`${model} --set ${set} --view`, model, set, cores, ['--view']);
    table([plain, viewed], undefined);
    console.log(`  ${(plain.states / viewed.states).toFixed(1)}x fewer states with --view`);
  }
}

console.log('\ntargets (issue "Exhaustive runs at realistic sizes"):');
const check = (ok: boolean, text: string) => console.log(`  ${ok ? 'met    ' : 'NOT MET'}  ${text}`);
if (spinRow) {
  check(
    rate(one) >= 0.5 * rate(spinRow),
    `1 worker at least 0.5x Spin: ${(rate(one) / rate(spinRow)).toFixed(2)}x`,
  );
  check(
    rate(all) >= rate(spinRow),
    `${cores} workers at least 1.0x Spin: ${(rate(all) / rate(spinRow)).toFixed(2)}x`,
  );
}
check(
  rate(all) >= 1.7 * rate(one),
  `${cores} workers at least 1.7x 1 worker: ${(rate(all) / rate(one)).toFixed(3)}x`,
);
for (const r of bigRows.filter((x) => x.states >= 5_000_000)) {
  const b = (r.rssMB * 2 ** 20) / r.states;
  check(b <= 100, `${r.name}: at most 100 bytes a state at 5M+ states: ${b.toFixed(0)} B`);
}
for (const r of bigRows.filter((x) => x.name.includes('dmas=4') && !x.name.includes('--view'))) {
  check(
    r.wall < 300 && r.rssMB < 2048,
    `${r.name}: under 5 minutes and 2 GB: ${r.wall.toFixed(0)} s, ${fmt(r.rssMB)} MB`,
  );
}

console.log(
  '\ntargets (issue "State-space reductions"; POR and symmetry add nothing on container, see above):',
);
const row = (prefix: string) => bigRows.find((x) => x.name.startsWith(prefix));
const [plain4, view4, view5] = [
  row('container --set dmas=4,'),
  row('container --set dmas=4 --view'),
  row('container --set dmas=5 --view'),
];
if (plain4 && view4) {
  const f = plain4.states / view4.states;
  check(f >= 10, `container --set dmas=4, at least 10x fewer states: ${f.toFixed(1)}x with --view`);
}
if (view5) {
  check(
    view5.wall < 600 && view5.note === undefined,
    `container --set dmas=5 complete in under 10 minutes: ${fmt(view5.states)} states in ${view5.wall.toFixed(0)} s with --view`,
  );
}

// Where the time goes: a CPU profile of the 1-worker run.
const profDir = join(ROOT, 'out', 'bench-profile');
rmSync(profDir, { recursive: true, force: true });
mkdirSync(profDir, { recursive: true });
spawnSync(
  process.execPath,
  [
    '--cpu-prof',
    `--cpu-prof-dir=${profDir}`,
    BIN,
    'explore',
    MODEL,
    '--set',
    `regions=${Math.min(regions, 6)}`,
    '--workers',
    '1',
    '--no-check',
    '--no-trails',
    '--json',
  ],
  { cwd: ROOT, encoding: 'utf8' },
);
if (existsSync(profDir)) {
  console.log(
    `\nwhere the time goes (1 worker, ${Math.min(regions, 6)} regions, self time; profile in out/bench-profile):`,
  );
  for (const line of profileTop(profDir, 12)) console.log(line);
}
