/**
 * The model side of a replay: the set of model states consistent with what the
 * kernel did so far. A path fixes only the sequence of uAPI calls; the
 * kernel-internal steps between them (lock windows, callbacks, the release
 * path) may interleave in any way the model allows. So after each observed
 * call the tracker keeps every state reachable by internal steps in which the
 * calling actor has returned with the observed result, and the allowed results
 * of the next call are computed from that whole set. A 'blocked' observation is
 * allowed only where the model has the actor stuck: not returned, and unable to
 * return by internal steps alone.
 */
import type { EventObject, StateNode } from 'xstate';
import type { AnyEngine } from '../explorer/engine.ts';
import { chooseEngine } from '../explorer/engine-choice.ts';
import type { ResolvedVariant } from '../explorer/model.ts';

/** Bound on the states one consistent set may hold (the replayed models are small). */
export const MAX_CONSISTENT = 50_000;

const key = (engine: AnyEngine, s: unknown) => {
  const f = engine.fingerprint(s);
  return `${f.hi}:${f.lo}`;
};

/** errno aliases the shim prints by their first name (asm-generic/errno.h). */
const ALIASES: Record<string, string> = {
  EDEADLOCK: 'EDEADLK',
  EWOULDBLOCK: 'EAGAIN',
  ENOTSUP: 'EOPNOTSUPP',
};
export const normalErrno = (e: string) => ALIASES[e] ?? e;

export class ModelTracker {
  readonly engine: AnyEngine;
  private states: Map<string, unknown>;
  /** Per actor, the leaf state ids in which it is between calls (a call event is handled there, or final). */
  private readonly homes: Map<string, Set<string>>;

  constructor(
    readonly variant: ResolvedVariant,
    /** Event types the target never performs (driver steps the target's driver does not take). */
    private readonly absent: ReadonlySet<string> = new Set(),
  ) {
    this.engine = chooseEngine(variant, 'auto').engine;
    this.homes = homeStates(variant);
    const s0 = this.engine.initial();
    this.states = this.closure(new Map([[key(this.engine, s0), s0]])).states;
  }

  get size(): number {
    return this.states.size;
  }

  /** Whether `actor` has returned from its last call in `s` (at home, not 'blocked'). */
  returned(s: unknown, actor: string): boolean {
    const v = this.engine.view(s);
    const value = (v.value as Record<string, unknown>)[actor];
    const home = this.homes.get(actor);
    const leaf = leafOf(value);
    const ret = (v.context as { ret?: Record<string, unknown> }).ret?.[actor];
    return ret !== 'blocked' && home !== undefined && leaf !== undefined && home.has(leaf);
  }

  retOf(s: unknown, actor: string): string | null {
    const r = (this.engine.view(s).context as { ret?: Record<string, unknown> }).ret?.[actor];
    return r === undefined || r === null ? null : String(r);
  }

  /** States reachable from `start` by internal steps (not calls, not absent), with the edges. */
  private closure(start: Map<string, unknown>) {
    const states = new Map(start);
    const edges = new Map<string, string[]>();
    const queue = [...start.keys()];
    while (queue.length) {
      const k = queue.shift() as string;
      const s = states.get(k);
      const out: string[] = [];
      for (const e of this.variant.events(this.engine.view(s))) {
        if (this.variant.calls.has(e.type) || this.absent.has(e.type)) continue;
        const next = this.engine.step(s, e);
        if (next === null) continue;
        const nk = key(this.engine, next);
        out.push(nk);
        if (!states.has(nk)) {
          if (states.size >= MAX_CONSISTENT)
            throw new Error(`more than ${MAX_CONSISTENT} model states consistent with the replay`);
          states.set(nk, next);
          queue.push(nk);
        }
      }
      edges.set(k, out);
    }
    return { states, edges };
  }

  /**
   * What the model allows for `actor`'s call `event` from the current set:
   * result → the states after it (closed under internal steps) where the actor
   * returned with that result; 'blocked' → states where it is stuck for good.
   */
  allowed(actor: string, event: EventObject): Map<string, Map<string, unknown>> {
    const after = new Map<string, unknown>();
    for (const s of this.states.values()) {
      const next = this.engine.step(s, event);
      if (next !== null) after.set(key(this.engine, next), next);
    }
    const out = new Map<string, Map<string, unknown>>();
    if (after.size === 0) return out;
    const { states, edges } = this.closure(after);
    const add = (r: string, k: string, s: unknown) => {
      if (!out.has(r)) out.set(r, new Map());
      out.get(r)?.set(k, s);
    };
    // Backward reachability of a returned state inside the closure: the rest is stuck.
    const canReturn = new Set<string>();
    for (const [k, s] of states) if (this.returned(s, actor)) canReturn.add(k);
    for (let changed = true; changed;) {
      changed = false;
      for (const [k, succ] of edges) {
        if (!canReturn.has(k) && succ.some((n) => canReturn.has(n))) {
          canReturn.add(k);
          changed = true;
        }
      }
    }
    for (const [k, s] of states) {
      if (this.returned(s, actor)) add(normalErrno(this.retOf(s, actor) ?? '0'), k, s);
      else if (!canReturn.has(k)) add('blocked', k, s);
    }
    return out;
  }

  /**
   * Per state of the set in which `event` is enabled: the results `actor` can return with from
   * there (states after it, closed under internal steps, where it has returned). What a call's
   * facts are compared against: the model's prediction depends on the state the call is made in.
   */
  resultsFrom(
    actor: string,
    event: EventObject,
  ): { before: unknown; results: Map<string, Map<string, unknown>> }[] {
    const out: { before: unknown; results: Map<string, Map<string, unknown>> }[] = [];
    for (const s of this.states.values()) {
      const next = this.engine.step(s, event);
      if (next === null) continue;
      const { states } = this.closure(new Map([[key(this.engine, next), next]]));
      const results = new Map<string, Map<string, unknown>>();
      for (const [k, a] of states) {
        if (!this.returned(a, actor)) continue;
        const r = normalErrno(this.retOf(a, actor) ?? '0');
        if (!results.has(r)) results.set(r, new Map());
        results.get(r)?.set(k, a);
      }
      out.push({ before: s, results });
    }
    return out;
  }

  /**
   * For a call left in flight on purpose (the path has it return at no later step): the states
   * after it, closed under internal steps, in which `actor` has not returned yet.
   */
  inFlight(actor: string, event: EventObject): Map<string, unknown> {
    const after = new Map<string, unknown>();
    for (const s of this.states.values()) {
      const next = this.engine.step(s, event);
      if (next !== null) after.set(key(this.engine, next), next);
    }
    const { states } = this.closure(after);
    return new Map([...states].filter(([, s]) => !this.returned(s, actor)));
  }

  /** Keep the states, closed under internal steps, in which `actor` has returned with `result`. */
  keepReturned(actor: string, result: string): number {
    const { states } = this.closure(this.states);
    const kept = new Map(
      [...states].filter(
        ([, s]) => this.returned(s, actor) && normalErrno(this.retOf(s, actor) ?? '0') === result,
      ),
    );
    if (kept.size > 0) this.states = kept;
    return kept.size;
  }

  /** Keep the states in which every actor of `actors` is stuck for good (no return by internal steps). */
  keepStuck(actors: readonly string[]): number {
    const { states, edges } = this.closure(this.states);
    const stuck = new Map<string, unknown>();
    for (const [k, s] of this.states) {
      if (actors.every((a) => !this.canReturnFrom(k, a, states, edges))) stuck.set(k, s);
    }
    if (stuck.size > 0) this.states = stuck;
    return stuck.size;
  }

  private canReturnFrom(
    start: string,
    actor: string,
    states: Map<string, unknown>,
    edges: Map<string, string[]>,
  ): boolean {
    const seen = new Set([start]);
    const queue = [start];
    while (queue.length) {
      const k = queue.shift() as string;
      if (this.returned(states.get(k), actor)) return true;
      for (const n of edges.get(k) ?? []) {
        if (seen.has(n)) continue;
        seen.add(n);
        queue.push(n);
      }
    }
    return false;
  }

  /** Keep the states of an allowed result (from `allowed`). */
  commit(states: Map<string, unknown>): void {
    this.states = this.closure(states).states;
  }

  /** Restrict to the states whose view satisfies `p` (a check of an observed quantity). */
  filter(p: (context: any) => boolean): number {
    const kept = new Map([...this.states].filter(([, s]) => p(this.engine.view(s).context)));
    if (kept.size > 0) this.states = kept;
    return kept.size;
  }

  /** Keep the states whose context has no reason in `unfit`; returns the reasons when none is left. */
  restrict(unfit: (context: any) => string | null): string[] {
    const reasons = new Set<string>();
    const kept = new Map<string, unknown>();
    for (const [k, s] of this.states) {
      const why = unfit(this.engine.view(s).context);
      if (why === null) kept.set(k, s);
      else reasons.add(why);
    }
    if (kept.size === 0) return [...reasons];
    this.states = kept;
    return [];
  }

  /** Values of `f` over the consistent states (for the report). */
  values<T>(f: (context: any) => T): T[] {
    return [
      ...new Set([...this.states.values()].map((s) => JSON.stringify(f(this.engine.view(s).context)))),
    ].map((j) => JSON.parse(j) as T);
  }
}

export function leafOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [k, v] = Object.entries(value)[0] ?? [];
    if (k === undefined) return undefined;
    const inner = leafOf(v);
    return inner === undefined ? k : `${k}.${inner}`;
  }
  return undefined;
}

/** For each actor (top-level region), the relative leaf paths where it is between calls. */
export function homeStates(variant: ResolvedVariant): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const root = variant.machine.root as StateNode<any, any>;
  for (const [actor, region] of Object.entries(root.states) as [string, StateNode<any, any>][]) {
    const set = new Set<string>();
    const visit = (n: StateNode<any, any>, path: string, inherited: boolean) => {
      const here = inherited || [...n.transitions.keys()].some((t) => variant.calls.has(t));
      const children = Object.entries(n.states) as [string, StateNode<any, any>][];
      if (children.length === 0) {
        if (here || n.type === 'final') set.add(path);
        return;
      }
      for (const [name, c] of children) visit(c, path ? `${path}.${name}` : name, here);
    };
    for (const [name, c] of Object.entries(region.states) as [string, StateNode<any, any>][])
      visit(c, name, false);
    out.set(actor, set);
  }
  return out;
}
