/**
 * Coverage and vacuity: which machine transitions (source state, event,
 * branch) fired in the search, which never did, and which event types the
 * generator offered but the machine never accepted. A transition that never
 * fires is either a bug in the model (a typo in a guard makes an event
 * impossible, and every property then "holds" without ever being tested) or
 * knowingly unreachable in the variant, which the model must say, with the
 * reason (`unreachable`). A listed transition that fires, or a listed name
 * that matches no transition, is reported too: the list must stay true.
 */
import { type Engine, transitionName } from './engine.ts';
import type { ResolvedVariant } from './model.ts';

export interface Coverage {
  /** How many transitions the machine has. */
  readonly transitions: number;
  /** Transitions that never fired, by name (`vmm.idle#VmmMapDma[0]`), in document order. */
  readonly neverFired: readonly string[];
  /** Never-fired transitions the variant lists as knowingly unreachable, with the reason. */
  readonly unreachable: Readonly<Record<string, string>>;
  /** Entries of the variant's `unreachable` list that are not true: the transition fired, or no transition has that name. */
  readonly staleUnreachable: readonly string[];
  /** Event types the generator offered that no state ever accepted. */
  readonly neverEnabled: readonly string[];
}

/** Never-fired transitions that the variant does not explain: what `--require-coverage` fails on. */
export const unexplained = (c: Coverage): string[] => c.neverFired.filter((t) => !(t in c.unreachable));

export function coverageOf(
  variant: ResolvedVariant,
  engine: Pick<Engine, 'transitionIds' | 'fired'>,
  offered: ReadonlyMap<string, boolean>,
): Coverage {
  // (engine.fired may come from another engine than engine.transitionIds: workers' bitmaps, merged.)
  const machineId = variant.machine.id;
  const names = engine.transitionIds.map((id) => transitionName(id, machineId));
  const neverFired = names.filter((_, k) => engine.fired[k] === 0);
  const unreachable: Record<string, string> = {};
  const stale: string[] = [];
  for (const [key, reason] of Object.entries(variant.unreachable)) {
    const listed = names.flatMap((n, k) => (matches(key, n) ? [k] : []));
    if (listed.length === 0) stale.push(`${key} (no such transition)`);
    for (const k of listed) {
      if (engine.fired[k] === 1) stale.push(`${names[k]} (fired)`);
      else unreachable[names[k]] = reason;
    }
  }
  const neverEnabled = [...offered].filter(([, enabled]) => !enabled).map(([type]) => type);
  return { transitions: names.length, neverFired, unreachable, staleUnreachable: stale, neverEnabled };
}

/**
 * A key names one branch (`vmm.idle#VmmMapDma[0]`), every branch of an event
 * in a state (`vmm.idle#VmmMapDma`), or, with `*` standing for any run of
 * characters, a family (`*#VmmHalt`: the halt after a kernel BUG, from every
 * state).
 */
export function matches(key: string, name: string): boolean {
  if (key.includes('*')) {
    const re = new RegExp(`^${key.split('*').map(escapeRe).join('.*')}(\\[\\d+\\])?$`);
    return re.test(name);
  }
  return key === name || (!key.endsWith(']') && name.startsWith(`${key}[`));
}

const escapeRe = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
