/**
 * Symmetry reduction (`--symmetry`), TLC's SYMMETRY sets: a model declares
 * sets of interchangeable ids (its dmas, its mdevs) and how to rename them in
 * a state (model.ts Symmetry). The explorer then stores one representative
 * of every orbit: of a state and all its renamings, the one with the least
 * fingerprint. An engine wrapper does it, so no search strategy changes: its
 * `step` returns the representative of the successor.
 *
 * Sound when the renamings are automorphisms: each maps every invariant to
 * itself and the transition relation onto itself. That is checked, not
 * trusted: on the first states and then on a sample, a random renaming of
 * the state must satisfy the same invariants, and its successors must have
 * the same representatives. A declaration that fails is a model error.
 * Invariants and deadlocks are preserved (a state violates one iff its
 * representative does); temporal properties other than `sometimes` are not
 * checked under symmetry, as in TLC.
 *
 * Counterexamples are found among representatives; representative.ts turns
 * a path of them back into the events of a concrete run from the real
 * initial state, which is then replayed on xstate's transition().
 */
import type { Engine } from './engine.ts';
import type { Fingerprint } from './fingerprint.ts';
import { callModel, ModelError, type ResolvedVariant, type Symmetry } from './model.ts';

type Perm = Readonly<Record<string, readonly number[]>>;

/** Every renaming: the product of each set's permutations, the identity first. */
export function renamings(sets: Readonly<Record<string, number>>): Perm[] {
  let out: Record<string, number[]>[] = [{}];
  for (const [name, n] of Object.entries(sets)) {
    const next: Record<string, number[]>[] = [];
    for (const p of permutations(n)) for (const o of out) next.push({ ...o, [name]: p });
    out = next;
  }
  return out;
}

function permutations(n: number): number[][] {
  if (n <= 1) return [Array.from({ length: n }, (_, i) => i)];
  const out: number[][] = [];
  for (const rest of permutations(n - 1)) {
    for (let at = 0; at < n; at++) out.push([...rest.slice(0, at), n - 1, ...rest.slice(at)]);
  }
  // The identity first: it is the state itself.
  out.sort((a, b) => (a.every((x, i) => x === i) ? -1 : b.every((x, i) => x === i) ? 1 : 0));
  return out;
}

const less = (a: Fingerprint, b: Fingerprint) => a.hi < b.hi || (a.hi === b.hi && a.lo < b.lo);
const describe = (p: Perm) =>
  Object.entries(p)
    .map(([k, v]) => `${k} ${v.map((to, from) => `${from}→${to}`).join(' ')}`)
    .join(', ');

/** A sampled check every this many steps, after the first CHECK_FIRST. */
const CHECK_FIRST = 200;
const CHECK_EVERY = 997;

/**
 * With a key: the renamings that sort each set's ids by key, every order of
 * equal keys tried (id i goes to the position of i in the sorted order).
 */
function sortingRenamings(sym: Symmetry, context: unknown): Perm[] {
  let out: Record<string, number[]>[] = [{}];
  for (const [name, n] of Object.entries(sym.sets)) {
    const ids = Array.from({ length: n }, (_, i) => i);
    const keys = ids.map((i) => callModel('symmetry.key', () => sym.key!(context, name, i)));
    ids.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : 0));
    // Runs of equal keys may be ordered any way: their product of permutations.
    let orders: number[][] = [[]];
    for (let at = 0; at < n;) {
      let end = at + 1;
      while (end < n && keys[ids[end]] === keys[ids[at]]) end++;
      const run = ids.slice(at, end);
      orders = orders.flatMap((o) => permutations(run.length).map((p) => [...o, ...p.map((k) => run[k])]));
      at = end;
    }
    const perms = orders.map((order) => {
      const perm = new Array<number>(n);
      order.forEach((id, position) => {
        perm[id] = position;
      });
      return perm;
    });
    const next: Record<string, number[]>[] = [];
    for (const p of perms) for (const o of out) next.push({ ...o, [name]: p });
    out = next;
  }
  return out;
}

/** A state's orbit representative (the renaming with the least fingerprint), on a given engine. */
export function canonicalizer<S>(engine: Engine<S>, sym: Symmetry) {
  const others = renamings(sym.sets).slice(1);
  const rename = (s: S, p: Perm): S => {
    const v = engine.view(s);
    const context = callModel('symmetry.permute', () => sym.permute(v.context, p, v.value));
    return engine.withContext(s, context);
  };
  const canonical = (s: S): S => {
    if (sym.key !== undefined) return leastOf(s, sortingRenamings(sym, engine.view(s).context));
    return leastOf(s, others, s);
  };
  /** Of the state's renamings by `perms` (and the state itself, when given), the least by fingerprint. */
  const leastOf = (s: S, perms: readonly Perm[], itself?: S): S => {
    let best = itself;
    let bestFp = itself === undefined ? undefined : engine.fingerprint(itself);
    for (const p of perms) {
      const t = rename(s, p);
      const f = engine.fingerprint(t);
      if (bestFp === undefined || less(f, bestFp)) {
        best = t;
        bestFp = f;
      }
    }
    return best as S;
  };
  return { others, rename, canonical, fp: (s: S) => engine.fingerprint(canonical(s)) };
}

export function withSymmetry<S>(engine: Engine<S>, variant: ResolvedVariant): Engine<S> {
  const { others, rename, canonical } = canonicalizer(engine, variant.symmetry as Symmetry);
  // The check compares orbits by their least member over every renaming, whatever the key says.
  const { fp: orbitFp } = canonicalizer(engine, { ...(variant.symmetry as Symmetry), key: undefined });
  let steps = 0;
  let seed = 0x2545f491;
  const random = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };

  /** The declared renaming must be an automorphism: checked on `s` and one random renaming of it. */
  const check = (s: S) => {
    if (others.length === 0) return;
    const p = others[random(others.length)];
    const t = rename(s, p);
    const vs = engine.view(s);
    const vt = engine.view(t);
    for (const [name, holds] of Object.entries(variant.invariants)) {
      if (holds(vs) !== holds(vt)) {
        throw new ModelError(
          `--symmetry: invariant '${name}' is not symmetric under the renaming ${describe(p)}: ` +
            `it ${holds(vs) ? 'holds' : 'fails'} in a state and ${holds(vt) ? 'holds' : 'fails'} in its renamed copy`,
        );
      }
    }
    const successors = (x: S) =>
      variant
        .events(engine.view(x))
        .map((e) => engine.step(x, e))
        .filter((n): n is NonNullable<typeof n> => n !== null)
        .map((n) => orbitFp(n as S))
        .map((f) => `${f.hi}:${f.lo}`)
        .sort();
    const a = successors(s);
    const b = successors(t);
    if (a.join() !== b.join()) {
      throw new ModelError(
        `--symmetry: the renaming ${describe(p)} does not map the model's steps onto themselves: ` +
          `a state and its renamed copy have ${a.length} and ${b.length} successors, ` +
          `not the same ones up to renaming (does permute() rename every field, and treat every id alike?)`,
      );
    }
  };

  return {
    ...engine,
    initial: () => canonical(engine.initial()),
    step(s, event) {
      const n = engine.step(s, event);
      if (n === null) return null;
      steps++;
      if (steps <= CHECK_FIRST || steps % CHECK_EVERY === 0) check(s);
      return canonical(n);
    },
  };
}
