/**
 * Swarm shards (`vfio-mc swarm MODEL --shard I/N --seed S --budget 1s`):
 * for models too big to exhaust, Spin's swarm verification. Each shard runs
 * differently seeded randomised searches until its budget (time, or states
 * visited) is spent: random walks, and depth-first searches that take the
 * successors in a random order with a random depth bound, each with its own
 * visited set of a few thousand states, so that shards and runs cover
 * different parts of the space. Every state is checked against the
 * invariants and for deadlock; the shortest counterexample a shard finds
 * for each property is confirmed on xstate's transition() and kept as a
 * trail (`vfio-mc replay` reads it). The shard's JSON report (SwarmReport)
 * also says which transitions fired and how many distinct states it saw;
 * `vfio-mc merge` (merge-reports.ts) combines the shards' reports.
 *
 * The seed of shard I is S mixed with I, so the N shards of one seed differ
 * and a shard re-run with a states budget repeats itself exactly.
 */
import { readFileSync } from 'node:fs';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { EventObject } from 'xstate';
import type { AnyEngine } from './engine.ts';
import { transitionName } from './engine.ts';
import { chooseEngine } from './engine-choice.ts';
import { callModel, type ResolvedVariant } from './model.ts';
import { StateStore } from './state-store.ts';
import { replay } from './trace.ts';
import { type Trail, toTrail } from './trail.ts';

export const SWARM_FORMAT = 'vfio-mc swarm report';
const TOOL_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
/** New states one depth-first run may visit before the shard starts another run. */
const DFS_STATES = 1000;

export interface Budget {
  readonly seconds?: number;
  readonly states?: number;
}

export interface SwarmConfig {
  readonly shard: { readonly index: number; readonly count: number };
  readonly seed: number;
  readonly budget: Budget;
  /** The longest walk, the deepest depth-first run. @default 200 */
  readonly depth?: number;
  readonly check?: boolean;
  /** The model file, recorded in the trails. */
  readonly modelFile?: string;
}

export interface ShardViolation {
  readonly property: string;
  readonly kind: 'invariant' | 'deadlock';
  readonly length: number;
  /** Seconds into the shard's run when this counterexample was found. */
  readonly foundAfter: number;
  readonly strategy: 'walk' | 'dfs';
  readonly trail: Trail;
}

export interface SwarmReport {
  readonly format: typeof SWARM_FORMAT;
  readonly version: 1;
  readonly tool: string;
  readonly model: string;
  readonly variant: string;
  readonly params: Readonly<Record<string, number>>;
  readonly shard: { readonly index: number; readonly count: number };
  readonly seed: number;
  readonly budget: Budget;
  readonly depth: number;
  readonly seconds: number;
  readonly walks: number;
  readonly dfsRuns: number;
  /** States visited, counting repeats (what a states budget counts). */
  readonly visited: number;
  /** Distinct states among them. */
  readonly distinct: number;
  /** The properties checked: the invariants and deadlock. */
  readonly properties: readonly string[];
  readonly coverage: {
    readonly transitions: readonly string[];
    readonly fired: readonly string[];
    /** Event types the generator offered, and whether any state accepted one. */
    readonly offered: Readonly<Record<string, boolean>>;
  };
  /** The shortest counterexample found for each property violated. */
  readonly violations: readonly ShardViolation[];
}

/** `--budget 1s | 2m | 500ms | 10000states`. */
export function parseBudget(raw: string): Budget {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|states)$/.exec(raw.trim());
  if (!m || Number(m[1]) <= 0)
    throw new Error(
      `--budget must be a time (500ms, 1s, 2m, 1h) or a state count (10000states), got '${raw}'`,
    );
  const n = Number(m[1]);
  if (m[2] === 'states') return { states: Math.ceil(n) };
  return { seconds: n * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'] };
}

/** Shard I's own seed: S mixed with I (a 32-bit integer). */
export const shardSeed = (seed: number, index: number): number =>
  (Math.imul(seed | 0, 0x85ebca6b) ^ Math.imul(index + 1, 0x9e3779b1)) | 0;

interface Found {
  property: string;
  kind: 'invariant' | 'deadlock';
  events: EventObject[];
  foundAfter: number;
  strategy: 'walk' | 'dfs';
}

export function runShard(variant: ResolvedVariant, cfg: SwarmConfig): SwarmReport {
  const depth = cfg.depth ?? 200;
  const { engine } = chooseEngine(variant, 'auto', cfg.check ?? true);
  const rng = xoroshiro128plus(shardSeed(cfg.seed, cfg.shard.index));
  const pick = (n: number) => uniformInt(rng, 0, n - 1);
  const invariants = Object.entries(variant.invariants);
  const seen = new StateStore(1 << 14);
  seen.startLevel();
  const offered = new Map<string, boolean>();
  const found = new Map<string, Found>();
  const started = performance.now();
  let visited = 0;
  let walks = 0;
  let dfsRuns = 0;
  const spent = () =>
    (cfg.budget.states !== undefined && visited >= cfg.budget.states) ||
    (cfg.budget.seconds !== undefined && (performance.now() - started) / 1000 >= cfg.budget.seconds);

  /** A state reached by `path`: count it, check it; false when it violates something. */
  const visit = (s: unknown, path: EventObject[], strategy: 'walk' | 'dfs'): boolean => {
    visited++;
    seen.add(engine.fingerprint(s), -1, -1);
    const view = engine.view(s);
    let ok = true;
    for (const [name, holds] of invariants) {
      if (callModel(`invariant '${name}'`, () => holds(view))) continue;
      note(name, 'invariant', path, strategy);
      ok = false;
    }
    return ok;
  };
  const note = (property: string, kind: Found['kind'], path: EventObject[], strategy: Found['strategy']) => {
    const best = found.get(property);
    if (best && best.events.length <= path.length) return;
    found.set(property, {
      property,
      kind,
      events: [...path],
      foundAfter: (performance.now() - started) / 1000,
      strategy,
    });
  };
  const enabled = (s: unknown): [EventObject, unknown][] => {
    const out: [EventObject, unknown][] = [];
    for (const e of callModel('the event generator (events)', () => variant.events(engine.view(s)))) {
      const next = engine.step(s, e);
      if (offered.get(e.type) !== true) offered.set(e.type, next !== null);
      if (next !== null) out.push([e, next]);
    }
    return out;
  };
  const stuck = (s: unknown) => !engine.terminated(s).every(Boolean);

  const walk = () => {
    let s = engine.initial();
    const path: EventObject[] = [];
    if (!visit(s, path, 'walk')) return;
    while (path.length < depth && !spent()) {
      const next = enabled(s);
      if (next.length === 0) {
        if (stuck(s)) note('deadlock', 'deadlock', path, 'walk');
        return;
      }
      const [e, ns] = next[pick(next.length)];
      path.push(e);
      s = ns;
      if (!visit(s, path, 'walk')) return;
    }
  };

  /** Depth-first with the successors in a random order, a random depth bound, and a visited set of its own. */
  const dfs = () => {
    // Log-uniform between 4 and depth: shallow runs cover the first levels whole, deep ones go far.
    const bound = Math.round(
      Math.min(4, depth) * (depth / Math.min(4, depth)) ** (pick(1_000_001) / 1_000_000),
    );
    const mine = new StateStore(1 << 12);
    mine.startLevel();
    const stack: { s: unknown; next: [EventObject, unknown][] | undefined }[] = [];
    const path: EventObject[] = [];
    const enter = (s: unknown): boolean => {
      if (mine.add(engine.fingerprint(s), -1, -1) < 0) return false;
      if (!visit(s, path, 'dfs')) return false;
      stack.push({ s, next: undefined });
      return true;
    };
    if (!enter(engine.initial())) return;
    while (stack.length > 0 && mine.size < DFS_STATES && !spent()) {
      const top = stack[stack.length - 1];
      if (top.next === undefined) {
        top.next = stack.length > bound ? [] : shuffle(enabled(top.s));
        if (top.next.length === 0 && stack.length <= bound && stuck(top.s))
          note('deadlock', 'deadlock', path, 'dfs');
      }
      const step = top.next.pop();
      if (step === undefined) {
        stack.pop();
        path.pop();
        continue;
      }
      path.push(step[0]);
      if (!enter(step[1])) path.pop();
    }
  };
  const shuffle = <T>(a: T[]): T[] => {
    for (let i = a.length - 1; i > 0; i--) {
      const j = pick(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };

  while (!spent()) {
    if ((walks + dfsRuns) % 2 === 0) {
      walk();
      walks++;
    } else {
      dfs();
      dfsRuns++;
    }
  }
  return report(variant, engine, cfg, depth, {
    seconds: (performance.now() - started) / 1000,
    walks,
    dfsRuns,
    visited,
    distinct: seen.size,
    offered,
    found: [...found.values()],
  });
}

function report(
  variant: ResolvedVariant,
  engine: AnyEngine,
  cfg: SwarmConfig,
  depth: number,
  run: {
    seconds: number;
    walks: number;
    dfsRuns: number;
    visited: number;
    distinct: number;
    offered: Map<string, boolean>;
    found: Found[];
  },
): SwarmReport {
  const names = engine.transitionIds.map((id) => transitionName(id, variant.machine.id));
  return {
    format: SWARM_FORMAT,
    version: 1,
    tool: TOOL_VERSION,
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    shard: cfg.shard,
    seed: cfg.seed,
    budget: cfg.budget,
    depth,
    seconds: run.seconds,
    walks: run.walks,
    dfsRuns: run.dfsRuns,
    visited: run.visited,
    distinct: run.distinct,
    properties: [...Object.keys(variant.invariants), 'deadlock'],
    coverage: {
      transitions: names,
      fired: names.filter((_, k) => engine.fired[k] === 1),
      offered: Object.fromEntries(run.offered),
    },
    violations: run.found.map((f) => {
      // Confirmed on xstate's transition(): the same events, accepted in the same order.
      const r = replay(variant, f.events);
      const v = { property: f.property, kind: f.kind, initial: r.snapshots[0].value, trace: r.steps };
      return {
        property: f.property,
        kind: f.kind,
        length: f.events.length,
        foundAfter: f.foundAfter,
        strategy: f.strategy,
        trail: toTrail(v, variant, cfg.modelFile),
      };
    }),
  };
}
