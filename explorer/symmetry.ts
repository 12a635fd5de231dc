/**
 * Symmetry reduction (`--symmetry`), TLC's SYMMETRY sets: a model declares
 * sets of interchangeable ids (its dmas, its mdevs) and how to rename them in
 * a state (model.ts Symmetry). The explorer then stores one representative
 * of every orbit: of a state and all its renamings, the one with the least
 * fingerprint (or, with a key, the least among those that sort the ids). An
 * engine wrapper does it, so no search strategy changes: its `initial` and
 * `step` return representatives.
 *
 * Proved on the states it is applied to, not sampled (explorer/README.md,
 * Reductions, has the argument). For every representative r the search
 * stores, and every distinct renamed copy π(r) of it (one π for each; the
 * renamings that give r itself need nothing: π(r) is r):
 * 1. every predicate the search judges (invariants, the `sometimes`
 *    properties' predicates) has the same value in π(r) as in r;
 * 2. the successors of π(r) are exactly the successors of r renamed by π,
 *    as sets of states (the events may differ: they carry ids too);
 * 3. renaming π(r) back by π⁻¹ gives r (permute() is a renaming).
 * Then every reachable state is a renamed copy of a stored representative,
 * with the same predicate values and renamed successors: the graph of
 * representatives is the exact quotient of the state graph. Invariants,
 * deadlocks and `sometimes` are judged on it soundly (a `sometimes` state
 * anywhere in a representative's orbit counts, since its predicate is the
 * same there). Other temporal properties are not judged (the check does not
 * relate the actors that take the steps, which their fairness needs).
 * A failure is a model error naming the renaming, the state and the event
 * or predicate. `--symmetry=unchecked` runs without the check, and the
 * result then carries the assumption (result.ts `assumptions`).
 *
 * Counterexamples are found among representatives; representative.ts turns
 * a path of them back into the events of a concrete run from the real
 * initial state, which is then replayed on xstate's transition().
 */
import type { EventObject } from 'xstate';
import type { Engine } from './engine.ts';
import type { Fingerprint } from './fingerprint.ts';
import { callModel, ModelError, type ResolvedVariant, type StatePredicate, type Symmetry } from './model.ts';
import { temporalLabels } from './temporal.ts';
import { FingerprintSet } from './view-reads.ts';

/** `--symmetry` proves the declared group on every stored state; `--symmetry=unchecked` assumes it. */
export type SymmetryMode = boolean | 'unchecked';

/** The assumption a result carries when its symmetry was not checked (result.ts `assumptions`). */
export const UNCHECKED_SYMMETRY =
  'unchecked symmetry: every verdict assumes the renamings keep the steps and properties';

/** The note every verdict of such a result carries. */
export const ASSUMING_SYMMETRY = 'assuming the unchecked symmetry';

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

const fpKey = (f: Fingerprint) => `${f.hi >>> 0}:${f.lo >>> 0}`;

/** The inverse of a renaming. */
const inverse = (p: Perm): Perm =>
  Object.fromEntries(
    Object.entries(p).map(([k, v]) => {
      const inv = new Array<number>(v.length);
      v.forEach((to, from) => {
        inv[to] = from;
      });
      return [k, inv];
    }),
  );

/** A state for a message: its control state and context, cut to a readable length. */
function shown(engine: Engine<unknown>, s: unknown): string {
  const v = engine.view(s);
  const text = `${typeof v.value === 'string' ? v.value : JSON.stringify(v.value)} ${JSON.stringify(v.context)}`;
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

/** `options.check: false` is the tests' mutant: the same reduction without its check. */
export function withSymmetry<S>(
  engine: Engine<S>,
  variant: ResolvedVariant,
  mode: SymmetryMode = true,
  options = { check: true },
): Engine<S> {
  const { others, rename, canonical } = canonicalizer(engine, variant.symmetry as Symmetry);
  if (mode === 'unchecked' || !options.check) {
    return {
      ...engine,
      initial: () => canonical(engine.initial()),
      step(s, event) {
        const n = engine.step(s, event);
        return n === null ? null : canonical(n);
      },
    };
  }
  const inverses = others.map(inverse);
  const preds: { name: string; holds: StatePredicate }[] = [
    ...Object.entries(variant.invariants).map(([name, holds]) => ({ name: `invariant '${name}'`, holds })),
    ...temporalLabels(variant),
  ];
  const modelId = variant.modelId;
  const any = engine as Engine<unknown>;
  const refuse = (p: Perm, what: string) =>
    new ModelError(
      `--symmetry: the renaming ${describe(p)} is not a symmetry of model '${modelId}': ${what}. ` +
        'Every renaming must map each step onto a step and keep every property’s value ' +
        '(does permute() rename every field, and do the guards, actions and properties treat every id alike?)',
    );

  /** A state's successors: by fingerprint, the event that reaches each and the state. */
  const successors = (s: S) => {
    const out = new Map<string, { event: EventObject; next: S }>();
    for (const event of callModel('the event generator (events)', () => variant.events(engine.view(s)))) {
      const next = engine.step(s, event);
      if (next !== null && !out.has(fpKey(engine.fingerprint(next))))
        out.set(fpKey(engine.fingerprint(next)), { event, next });
    }
    return out;
  };

  /** Condition 2 for one renaming: the successors of m = p(r) are those of r renamed by p. */
  const commutes = (
    r: S,
    p: Perm,
    ofR: Map<string, { event: EventObject; next: S }>,
    m: S,
    ofM: Map<string, { event: EventObject; next: S }>,
  ) => {
    const renamed = new Set<string>();
    for (const { event, next } of ofR.values()) {
      const k = fpKey(engine.fingerprint(rename(next, p)));
      renamed.add(k);
      if (!ofM.has(k))
        throw refuse(
          p,
          `in state ${shown(any, r)}, ${JSON.stringify(event)} leads to ${shown(any, next)}, ` +
            `but no step of its renamed copy ${shown(any, m)} leads to the renamed successor`,
        );
    }
    for (const [k, { event, next }] of ofM) {
      if (!renamed.has(k))
        throw refuse(
          p,
          `in the renamed copy ${shown(any, m)} of state ${shown(any, r)}, ${JSON.stringify(event)} leads to ` +
            `${shown(any, next)}, which is no renamed successor of the state`,
        );
    }
  };

  /** The representatives checked: each once, however many steps reach it. */
  const checked = new FingerprintSet();
  /** Conditions 1 to 3 on a representative about to be stored. */
  const check = (r: S) => {
    const fp = engine.fingerprint(r);
    if (!checked.add(fp.hi, fp.lo)) return;
    const self = fpKey(fp);
    const vr = engine.view(r);
    const values = preds.map(({ name, holds }) => Boolean(callModel(name, () => holds(vr))));
    const ofR = successors(r);
    // Each distinct copy once, by the first renaming that gives it: the argument needs one for each reachable copy.
    const copies = new Set<string>([self]);
    others.forEach((p, k) => {
      const m = rename(r, p);
      if (fpKey(engine.fingerprint(rename(m, inverses[k]))) !== self)
        throw refuse(
          p,
          `renaming state ${shown(any, r)} by it and back by its inverse gives another state, ` +
            'so permute() is not a renaming',
        );
      const mk = fpKey(engine.fingerprint(m));
      if (copies.has(mk)) return;
      copies.add(mk);
      const vm = engine.view(m);
      preds.forEach(({ name, holds }, i) => {
        const there = Boolean(callModel(name, () => holds(vm)));
        if (there !== values[i])
          throw refuse(
            p,
            `${name} ${values[i] ? 'holds' : 'fails'} in state ${shown(any, r)} and ` +
              `${there ? 'holds' : 'fails'} in its renamed copy ${shown(any, m)}`,
          );
      });
      commutes(r, p, ofR, m, successors(m));
    });
  };

  return {
    ...engine,
    initial: () => {
      const r = canonical(engine.initial());
      check(r);
      return r;
    },
    step(s, event) {
      const n = engine.step(s, event);
      if (n === null) return null;
      const r = canonical(n);
      check(r);
      return r;
    },
  };
}
