/**
 * Footprints: what a model function reads of a context and what a step
 * writes, recorded by running it, and the path patterns a model declares
 * them with (model.ts Footprints). Partial-order reduction (por.ts) trusts
 * only declared footprints and checks every recorded one against them.
 *
 * Reads are recorded by a Proxy over the (frozen, plain-data) context: every
 * property read is a read of its path (`t1.dmas.0.pin`); reading an object
 * on the way down (`t1`, `t1.dmas`) is a *shallow* read, of that path's kind
 * and existence only. Writes are the paths whose values differ between the
 * context before and after the step (a structural diff), so a step that puts
 * back what was there writes nothing.
 *
 * An enumeration by model code (spread, Object.keys/values/entries, for...in,
 * JSON.stringify) reads every field of the object and its key set: a copy
 * `{ ...c.ret, vmm: '0' }` cannot be told from a decision on the values it
 * enumerates (`Object.values(c.ret).some(...)`), so both are reads. The one
 * enumeration that is a copy by construction is the engine's own merge of an
 * assign's update into the root context (xstate's
 * `Object.assign({}, context, update)`, the compiled engine's spread), which
 * runs no model code: told apart by its caller (the stack), it reads nothing
 * the update overwrites or the new root copies unchanged. An object read and
 * put back at its own path is not a read of what is below it; put anywhere
 * else, it is a read of its whole subtree (a deep read).
 */
import type { EventObject } from 'xstate';
import type { Engine } from './engine.ts';
import type { ModelSnapshot } from './model.ts';

/** A recorded read: its path, and whether it reads the whole subtree (deep) or the value there (shallow). */
export interface Read {
  readonly path: string;
  readonly deep: boolean;
  /** A shallow read that found an object: it depends on that path's kind only, not on what is below it. */
  readonly nav?: boolean;
}

export interface Footprint {
  readonly reads: readonly Read[];
  readonly writes: readonly string[];
}

const KEYS = '#keys';
/** The path segment a key set is read or written at: an array's length, an object's `#keys`. */
const keysOf = (o: object) => (Array.isArray(o) ? 'length' : KEYS);
const REAL = Symbol('footprint.real');

interface Wrapped {
  readonly real: object;
  readonly path: string;
}

const join = (path: string, key: string) => (path === '' ? key : `${path}.${key}`);
const isObject = (x: unknown): x is object => typeof x === 'object' && x !== null;
const has = (o: object, k: PropertyKey) => Object.prototype.hasOwnProperty.call(o, k);

/** Records reads through proxies of one context; `stop()` ends recording (the proxies then read through). */
export class Recorder {
  private readonly shallow = new Set<string>();
  private readonly nav = new Set<string>();
  private readonly deep = new Set<string>();
  /** Root fields read by the engine's merge of an assign's update: path -> value; kept only if the step did not copy them (see settle). */
  private readonly enumerated = new Map<string, unknown>();
  /** The root's key set read by that merge. */
  private readonly keySets = new Map<string, object>();
  /** Key sets read by model code (an enumeration): the object paths, always reads. */
  private readonly keyReads = new Map<string, object>();
  private readonly wrappers = new WeakMap<object, Wrapped>();
  private readonly cache = new Map<string, object>();
  private recording = true;

  wrap<T>(real: T, path = ''): T {
    if (!isObject(real)) return real;
    const known = this.cache.get(path);
    if (known !== undefined && this.wrappers.get(known)?.real === real) return known as T;
    let pending: PropertyKey | undefined;
    // Whether the last enumeration of this object was the engine's merge (the root only).
    let merging = false;
    const target = Array.isArray(real) ? [] : {};
    const proxy = new Proxy(target, {
      get: (_t, k) => {
        if (k === REAL) return real;
        const own = has(real, k);
        const viaEnumeration = pending === k;
        pending = undefined;
        const v = (real as Record<PropertyKey, unknown>)[k as string];
        if (typeof k === 'symbol') return v;
        if (!own && k in real) return v; // a method from the prototype (map, filter...)
        const p = join(path, k);
        if (this.recording) {
          // The engine's merge copies the root's fields (settle decides whether that was a read);
          // any other enumeration reads each field as a property access would.
          if (viaEnumeration && own && merging) {
            if (!isObject(v)) this.enumerated.set(p, v);
          } else (isObject(v) ? this.nav : this.shallow).add(p);
        }
        return isObject(v) ? this.wrap(v, p) : v;
      },
      has: (_t, k) => {
        // `k in x` reads whether k is there, not its value: like reading an object on the way down.
        if (typeof k !== 'symbol' && this.recording) this.nav.add(join(path, k));
        return k in real;
      },
      ownKeys: () => {
        merging = path === '' && this.recording && engineMerge();
        if (this.recording) (merging ? this.keySets : this.keyReads).set(path, real);
        return Reflect.ownKeys(real);
      },
      getOwnPropertyDescriptor: (_t, k) => {
        const d = Reflect.getOwnPropertyDescriptor(real, k);
        if (d === undefined) return undefined;
        pending = k;
        const value = isObject(d.value) ? this.wrap(d.value, join(path, String(k))) : d.value;
        // An array target has its own non-configurable length; every other property is reported configurable.
        const lengthOfArray = Array.isArray(real) && k === 'length';
        return { value, writable: true, enumerable: d.enumerable, configurable: !lengthOfArray };
      },
      getPrototypeOf: () => Object.getPrototypeOf(real),
      set: () => false,
      defineProperty: () => false,
      deleteProperty: () => false,
    });
    this.wrappers.set(proxy, { real, path });
    this.cache.set(path, proxy);
    return proxy as T;
  }

  /** The reads so far, without settling copies (for predicates, which have no output). */
  reads(): Read[] {
    this.recording = false;
    const out = this.direct();
    for (const p of this.enumerated.keys()) out.push({ path: p, deep: false });
    for (const [p, real] of this.keySets) out.push({ path: join(p, keysOf(real)), deep: false });
    return out;
  }

  /**
   * The reads of a step whose result is `out` (it may hold proxies): copies
   * excused, objects put elsewhere read deeply.
   */
  settle(before: unknown, out: unknown): Read[] {
    this.recording = false;
    const reads = this.direct();
    const rebuilt = (p: string): object | undefined => {
      const o = at(out, p, this);
      if (!isObject(o) || this.wrappers.has(o)) return undefined; // kept (the proxy) or gone
      return o === at(before, p, this) ? undefined : o;
    };
    for (const p of this.enumerated.keys()) {
      const dot = p.lastIndexOf('.');
      const parent = dot < 0 ? '' : p.slice(0, dot);
      // Copied to the object that replaces its own, or overwritten there: not a dependency.
      if (rebuilt(parent) === undefined) reads.push({ path: p, deep: false });
    }
    for (const [p, real] of this.keySets) {
      const o = rebuilt(p);
      if (o === undefined || !Object.keys(real).every((k) => has(o, k)))
        reads.push({ path: join(p, keysOf(real)), deep: false });
    }
    // Objects the step put somewhere other than where it read them.
    const visit = (x: unknown, p: string) => {
      if (!isObject(x)) return;
      const w = this.wrappers.get(x);
      if (w !== undefined) {
        if (w.path !== p) reads.push({ path: w.path, deep: true });
        return;
      }
      for (const k of Object.keys(x)) visit((x as Record<string, unknown>)[k], join(p, k));
    };
    visit(out, '');
    return reads;
  }

  private direct(): Read[] {
    return [
      ...[...this.deep].map((path) => ({ path, deep: true })),
      ...[...this.shallow].map((path) => ({ path, deep: false })),
      ...[...this.nav].filter((p) => !this.shallow.has(p)).map((path) => ({ path, deep: false, nav: true })),
      ...[...this.keyReads].map(([p, real]) => ({ path: join(p, keysOf(real)), deep: false })),
    ];
  }

  unwrap(x: unknown): unknown {
    return isObject(x) ? (this.wrappers.get(x)?.real ?? x) : x;
  }

  /** Run `fn` with structuredClone reading what it clones deeply (a proxy cannot be cloned). */
  during<T>(fn: () => T): T {
    return cloningUnwrapped(
      (x) => this.wrappers.get(x),
      (w) => {
        if (this.recording) this.deep.add(w.path);
      },
      fn,
    );
  }
}

/**
 * Runs `fn` with structuredClone taking recording proxies apart first (it cannot clone a
 * Proxy): each wrapped object `unwrap` knows is cloned as its real object, after `onWrapped`
 * has counted the clone as a read of all of it. Shared by the footprint recorder and the view
 * check's recorder (view-reads.ts).
 */
export function cloningUnwrapped<W extends { readonly real: unknown }, T>(
  unwrap: (x: object) => W | undefined,
  onWrapped: (w: W) => void,
  fn: () => T,
): T {
  const original = globalThis.structuredClone;
  const real = (x: unknown): unknown => {
    if (!isObject(x)) return x;
    const w = unwrap(x);
    if (w !== undefined) {
      onWrapped(w);
      return w.real;
    }
    if (Array.isArray(x)) return x.map(real);
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, real(v)]));
  };
  globalThis.structuredClone = ((x: unknown, o?: StructuredSerializeOptions) =>
    original(real(x), o)) as typeof structuredClone;
  try {
    return fn();
  } finally {
    globalThis.structuredClone = original;
  }
}

/** Model code never runs in these files: an enumeration they make of the root context is the engine's merge. */
const ENGINE_FRAME = /[\\/]node_modules[\\/]xstate[\\/]|[\\/]explorer[\\/]engine-compiled\.[cm]?[jt]s:/;

/**
 * Whether the enumeration being trapped is the engine's merge of an assign's
 * update into the context: its first caller outside this file and outside
 * built-ins (Object.assign) is xstate or the compiled engine. Anything else,
 * or a stack that cannot be read, is model code: a read (the sound side).
 */
function engineMerge(): boolean {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 8;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const caller = stack
    .split('\n')
    .slice(1)
    .find((l) => !/footprint\.[cm]?[jt]s:|\(<anonymous>\)|\(native\)|at <anonymous>$/.test(l));
  return caller !== undefined && ENGINE_FRAME.test(caller);
}

/** The value at a dotted path, through proxies, without recording. */
function at(x: unknown, path: string, r: Recorder): unknown {
  let v = r.unwrap(x);
  if (path === '') return v;
  for (const k of path.split('.')) {
    if (!isObject(v)) return undefined;
    v = r.unwrap((v as Record<string, unknown>)[k]);
  }
  return v;
}

/**
 * The paths at which two plain-data values differ: the deepest path where
 * they do (a field, an array element, `length` of an array whose length
 * changed, `#keys` of an object that gained or lost keys).
 */
export function writes(before: unknown, after: unknown, r?: Recorder): string[] {
  const out: string[] = [];
  const un = (x: unknown) => (r ? r.unwrap(x) : x);
  const walk = (a: unknown, b: unknown, p: string) => {
    a = un(a);
    b = un(b);
    if (a === b) return;
    if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) {
      out.push(p);
      return;
    }
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    if (Array.isArray(a) && a.length !== (b as unknown[]).length) out.push(join(p, 'length'));
    const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
    let keysChanged = false;
    for (const k of keys) {
      if (!Array.isArray(a) && has(ao, k) !== has(bo, k)) keysChanged = true;
      walk(ao[k], bo[k], join(p, k));
    }
    if (keysChanged) out.push(join(p, KEYS));
  };
  walk(before, after, '');
  return out;
}

/** Record one step: its reads and writes, on a recording copy of the state; the engine's own step is untouched. */
export function recordStep<S>(engine: Engine<S>, s: S, event: EventObject): Footprint {
  const before = engine.view(s).context;
  const r = new Recorder();
  const next = r.during(() => engine.step(engine.withContext(s, r.wrap(before)), event));
  if (next === null) return { reads: r.reads(), writes: [] };
  const out = engine.view(next).context;
  const reads = r.settle(before, out);
  return { reads, writes: writes(before, out, r) };
}

/**
 * What a state predicate (an invariant, a `sometimes`, the event generator)
 * reads of a snapshot: context paths, and `$state.<actor>` for the actors
 * whose control state it looks at (`value`, `matches`, `status`).
 */
export function recordPredicate<T>(
  view: ModelSnapshot,
  actors: readonly string[],
  fn: (v: ModelSnapshot) => T,
): { value: T; reads: Read[] } {
  const r = new Recorder();
  const control = new Set<string>();
  const all = () => actors.forEach((a) => control.add(a));
  const context = r.wrap(view.context);
  const proxied: ModelSnapshot = {
    get value() {
      all();
      return view.value;
    },
    get status() {
      all();
      return view.status;
    },
    context,
    matches(v) {
      if (isObject(v) && !Array.isArray(v)) Object.keys(v).forEach((a) => control.add(a));
      else all();
      return view.matches(v);
    },
  };
  const value = r.during(() => fn(proxied));
  const reads = [...r.reads(), ...[...control].map((a) => ({ path: `$state.${a}`, deep: false }))];
  return { value, reads };
}

// ---------------------------------------------------------------- patterns

/** A declared path pattern, split: `t1.dmas.*.pin` -> ['t1', 'dmas', '*', 'pin']; '*' matches any one segment. */
export type Pattern = readonly string[];

export const parsePattern = (p: string): Pattern => (p === '' ? [] : p.split('.'));

const segmentMatches = (a: string, b: string) => a === '*' || b === '*' || a === b;

/** Whether `prefix` matches the first segments of `path`. */
export function prefixOf(prefix: Pattern, path: Pattern): boolean {
  if (prefix.length > path.length) return false;
  for (let i = 0; i < prefix.length; i++) if (!segmentMatches(prefix[i], path[i])) return false;
  return true;
}

/** Whether pattern `a` covers pattern `b`: each of its segments is '*' or b's own, and it is no longer. */
export function covers(a: Pattern, b: Pattern): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== '*' && a[i] !== b[i]) return false;
  return true;
}

/** Two patterns touch the same data when one is a prefix of the other (a read of `t1.dmas` reads `t1.dmas.0.pin`). */
export const overlap = (a: Pattern, b: Pattern): boolean => prefixOf(a, b) || prefixOf(b, a);

/**
 * A recorded read is covered by declared read patterns: a value by a pattern
 * at or above it; an object read on the way down (nav) also by one below it,
 * since reading `t1.dmas.*.pin` reads that `t1` is there.
 */
export function readCovered(read: Read, declared: readonly Pattern[]): boolean {
  const p = parsePattern(read.path);
  return declared.some((d) => (read.nav ? overlap(d, p) : prefixOf(d, p)));
}

/** A recorded write is covered by a declared write pattern at or above it. */
export function writeCovered(path: string, declared: readonly Pattern[]): boolean {
  const p = parsePattern(path);
  return declared.some((d) => prefixOf(d, p));
}

/** A path with every array index generalised: `t1.dmas.0.pin` -> `t1.dmas.*.pin`. */
export const generalise = (path: string): string =>
  path
    .split('.')
    .map((s) => (/^\d+$/.test(s) ? '*' : s))
    .join('.');
