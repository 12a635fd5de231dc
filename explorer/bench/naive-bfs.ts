/**
 * The benchmark's baseline: the obvious explorer. xstate's transition() for
 * every candidate event (an event the machine rejects leaves the snapshot as
 * it was, so it finds no new key), JSON.stringify({ value, context }) as the
 * state key, a Map of every full snapshot. It is what one writes first, and
 * the number the explorer's speed is quoted against.
 */
import { type AnyMachineSnapshot, getInitialSnapshot, transition } from 'xstate';
import type { ResolvedVariant } from '../model.ts';

export function naiveBfs(variant: ResolvedVariant): { states: number; seconds: number } {
  const started = performance.now();
  const key = (s: AnyMachineSnapshot) => JSON.stringify({ value: s.value, context: s.context });
  const init = getInitialSnapshot(variant.machine) as AnyMachineSnapshot;
  const seen = new Map<string, AnyMachineSnapshot>([[key(init), init]]);
  const queue = [init];
  for (let head = 0; head < queue.length; head++) {
    const s = queue[head];
    for (const e of variant.events(s)) {
      const [next] = transition(variant.machine, s, e);
      const k = key(next as AnyMachineSnapshot);
      if (seen.has(k)) continue;
      seen.set(k, next as AnyMachineSnapshot);
      queue.push(next as AnyMachineSnapshot);
    }
  }
  return { states: seen.size, seconds: (performance.now() - started) / 1000 };
}

// Run on its own (by bench.ts, as a whole process): tsx naive-bfs.ts REGIONS
if (import.meta.url === `file://${process.argv[1]}`) {
  const { default: model } = await import('./dma-regions.ts');
  const regions = Number(process.argv[2] ?? 5);
  const r = naiveBfs(model.variant(undefined, { regions, pins: 2 }));
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
