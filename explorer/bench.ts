/**
 * `npm run bench`: the explorer against the naive BFS on the same model in
 * the same run, so the ratio means something on a noisy shared machine.
 * Usage: tsx explorer/bench.ts [--regions K] [--pins P] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { dmaRegionsModel, expectedStates } from './bench/dma-regions-model.ts';
import { naiveBfs } from './bench/naive-bfs.ts';
import { explore } from './explore.ts';

const { values } = parseArgs({
  options: {
    regions: { type: 'string', default: '6' },
    pins: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
  },
});
const k = Number(values.regions);
const p = Number(values.pins);
const rounds = Number(values.rounds);
for (const [name, v] of [
  ['--regions', k],
  ['--pins', p],
  ['--rounds', rounds],
] as const) {
  if (!Number.isSafeInteger(v) || v <= 0) {
    process.stderr.write(`bench: ${name} must be a positive integer\n`);
    process.exit(2);
  }
}

const variant = dmaRegionsModel(k, p).variant();
const want = expectedStates(k, p);
console.log(
  `benchmark: ${k} DMA regions, up to ${p} pins each: ${want} states expected; best of ${rounds} rounds`,
);

/**
 * Rates per second of CPU time (user + system) as well as wall-clock: this
 * machine is shared, and CPU time is what a run costs whatever else runs.
 */
async function timed<T>(f: () => T | Promise<T>): Promise<{ value: T; cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const value = await f();
  const c = process.cpuUsage(c0);
  return { value, cpu: (c.user + c.system) / 1e6, wall: (performance.now() - w0) / 1000 };
}

const best = (xs: number[]) => Math.max(...xs);
const fast: number[] = [];
const reference: number[] = [];
const naive: number[] = [];
const fastWall: number[] = [];
const naiveWall: number[] = [];
for (let round = 1; round <= rounds; round++) {
  const tf = await timed(() => explore(variant, { engine: 'compiled', maxStates: 10 * want }));
  const tr = await timed(() => explore(variant, { engine: 'reference', maxStates: 10 * want }));
  const tn = await timed(() => naiveBfs(variant));
  const [f, r, n] = [tf.value, tr.value, tn.value];
  for (const [name, states] of [
    ['explorer (compiled)', f.states],
    ['explorer (reference)', r.states],
    ['naive BFS', n.states],
  ] as const) {
    if (states !== want) {
      console.error(`bench: ${name} found ${states} states, expected ${want}`);
      process.exit(1);
    }
  }
  fast.push(want / tf.cpu);
  reference.push(want / tr.cpu);
  naive.push(want / tn.cpu);
  fastWall.push(want / tf.wall);
  naiveWall.push(want / tn.wall);
  console.log(
    `round ${round}: compiled ${Math.round(want / tf.cpu)} states/CPU-s (${tf.cpu.toFixed(2)} CPU-s, ${tf.wall.toFixed(2)} s wall, peak ${f.peakMemoryMB} MB), ` +
      `reference engine ${Math.round(want / tr.cpu)}, naive ${Math.round(want / tn.cpu)} states/CPU-s (${tn.cpu.toFixed(2)} CPU-s, ${tn.wall.toFixed(2)} s wall)`,
  );
}
const ratio = best(fast) / best(naive);
console.log('');
console.log(`states (all three agree): ${want}`);
console.log(
  `explorer, compiled engine:  ${Math.round(best(fast))} states per CPU-second (${Math.round(best(fastWall))} states/s wall)`,
);
console.log(
  `explorer, reference engine: ${Math.round(best(reference))} states per CPU-second (${(best(reference) / best(naive)).toFixed(1)}x naive)`,
);
console.log(
  `naive BFS:                  ${Math.round(best(naive))} states per CPU-second (${Math.round(best(naiveWall))} states/s wall)`,
);
console.log(
  `ratio compiled / naive:     ${ratio.toFixed(1)}x by CPU time, ${(best(fastWall) / best(naiveWall)).toFixed(1)}x by wall-clock (target: at least 20x)`,
);
