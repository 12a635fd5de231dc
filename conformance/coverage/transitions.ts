/**
 * Per transition: which kernel functions each model transition reached (the call steps that
 * took it, with the internal steps the kernel takes inside the call), and the citation check
 * against it. Transitions are named by event type (`VmmMapDma`): the machine comments cite per
 * handler, and a handler holds every transition of its event in its state.
 *
 * Findings:
 * - cited, never reached: a transition that was replayed cites a function no replay of it
 *   reached (a wrong citation, or a path that never exercises what the model says it does);
 * - reached, cited elsewhere: a transition reached a function the protocol cites (in its spec or
 *   for another transition) but it does not cite it (a kernel step the model may not model here);
 * - the spec cites a function no path of the protocol reached.
 * Functions reached and cited nowhere are listed in the JSON (`uncited`), not as findings: they
 * are the kernel's helpers, far more than a model names.
 */
import { type Citation, citationKey } from './citations.ts';

export interface TransitionReach {
  /** Call steps that took the transition (replays of it). */
  steps: number;
  /** `file:function` reached in at least one of them. */
  reached: Set<string>;
}

export interface TransitionCheck {
  readonly event: string;
  readonly steps: number;
  readonly cites: readonly string[];
  readonly reached: readonly string[];
  readonly citedNotReached: readonly string[];
  readonly reachedCitedElsewhere: readonly string[];
  readonly uncited: readonly string[];
}

export interface ProtocolCheck {
  readonly model: string;
  /** Files the protocol cites (spec and machine): its kernel files. */
  readonly files: readonly string[];
  readonly transitions: readonly TransitionCheck[];
  /** Cited by the spec page, reached by no replayed step of the protocol. */
  readonly specNotReached: readonly string[];
}

export function checkProtocol(
  model: string,
  spec: readonly Citation[],
  cites: ReadonlyMap<string, readonly Citation[]>,
  reach: ReadonlyMap<string, TransitionReach>,
  /** Functions of a profiled file (the check only speaks of those it can measure). */
  measurable: (c: Citation) => boolean,
): ProtocolCheck {
  const all = [...spec, ...[...cites.values()].flat()].filter(measurable);
  const files = [...new Set(all.map((c) => c.file))].sort();
  const citedAnywhere = new Set(all.map(citationKey));
  const reachedAnywhere = new Set([...reach.values()].flatMap((r) => [...r.reached]));
  const transitions: TransitionCheck[] = [];
  for (const [event, cs] of [...cites].sort(([a], [b]) => a.localeCompare(b))) {
    const r = reach.get(event);
    const own = new Set(cs.filter(measurable).map(citationKey));
    const reached = [...(r?.reached ?? [])]
      .filter((k) => files.includes(k.slice(0, k.lastIndexOf(':'))))
      .sort();
    transitions.push({
      event,
      steps: r?.steps ?? 0,
      cites: [...own].sort(),
      reached,
      citedNotReached: r ? [...own].filter((k) => !r.reached.has(k)).sort() : [],
      reachedCitedElsewhere: reached.filter((k) => !own.has(k) && citedAnywhere.has(k)),
      uncited: reached.filter((k) => !citedAnywhere.has(k)),
    });
  }
  return {
    model,
    files,
    transitions,
    specNotReached: [...new Set(spec.filter(measurable).map(citationKey))]
      .filter((k) => !reachedAnywhere.has(k))
      .sort(),
  };
}
