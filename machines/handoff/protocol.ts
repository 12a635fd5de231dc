/**
 * A handoff design as a table of rows: which actor, in which state, may take
 * which event (with which parameters), what the step does (a plain function,
 * null when it cannot run now) and how the event reads in uAPI terms. The
 * machine, the candidate events, the labels and waitingFor are all derived
 * from the one table, so they cannot disagree.
 */
import { setup } from 'xstate';
import type { ModelSnapshot } from '../../explorer/model.ts';
import { type StepFn, transitions } from '../kernel/iommufd-steps.ts';
import {
  ACTORS,
  type Actor,
  type HandoffCtx,
  type HandoffDesign,
  type HandoffEv,
  initialContext,
} from './context.ts';

export interface Row {
  readonly actor: Actor;
  readonly from: string;
  readonly event: string;
  /** The candidate parameter sets of the event (default: one, none). */
  readonly params?: readonly Partial<HandoffEv>[];
  readonly step: StepFn<HandoffCtx, HandoffEv>;
  readonly targets: readonly string[];
  /** The call in the thread's language, e.g. `ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, dma0)`, in the state it is made in. */
  readonly label: (ev: HandoffEv, before: HandoffCtx) => string;
}

export interface Protocol {
  readonly rows: readonly Row[];
  readonly initial: Readonly<Record<Actor, string>>;
  /** States in which the actor has terminated. */
  readonly finals: Readonly<Record<Actor, readonly string[]>>;
  /** What an actor waits for in a state where none of its steps can run (`actor.state`). */
  readonly waits: Readonly<Record<string, string>>;
}

const candidates = (r: Row): HandoffEv[] => (r.params ?? [{}]).map((p) => ({ type: r.event, ...p }));

function actorStates(p: Protocol, a: Actor) {
  const rows = p.rows.filter((r) => r.actor === a);
  const names = new Set([p.initial[a], ...p.finals[a], ...rows.flatMap((r) => [r.from, ...r.targets])]);
  const states: Record<string, object> = {};
  for (const name of names) {
    if (p.finals[a].includes(name)) {
      states[name] = { type: 'final' };
      continue;
    }
    const on: Record<string, unknown> = {};
    for (const r of rows.filter((x) => x.from === name)) {
      if (r.event in on) throw new Error(`${a}.${name}: two rows for ${r.event}`);
      on[r.event] = transitions(r.step, r.targets);
    }
    states[name] = { on };
  }
  return { initial: p.initial[a], states };
}

export function buildMachine(d: HandoffDesign, p: Protocol) {
  const states = Object.fromEntries(ACTORS.map((a) => [a, actorStates(p, a)]));
  return setup({ types: { context: {} as HandoffCtx, events: {} as HandoffEv } }).createMachine({
    id: 'exec-handoff',
    type: 'parallel',
    context: initialContext(d),
    states,
  } as any);
}

/** Every candidate event of the design, in table order (the same list in every state). */
export function protocolEvents(p: Protocol): (s: ModelSnapshot<HandoffCtx>) => HandoffEv[] {
  const seen = new Set<string>();
  const all = p.rows.flatMap(candidates).filter((e) => {
    const key = JSON.stringify(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return () => all;
}

export function protocolLabel(p: Protocol): (ev: HandoffEv, before: ModelSnapshot<HandoffCtx>) => string {
  const byType = new Map(p.rows.map((r) => [r.event, r.label]));
  return (ev, before) => byType.get(ev.type)?.(ev, before.context) ?? ev.type;
}

const stateOf = (s: ModelSnapshot<HandoffCtx>, a: Actor): string =>
  (s.value as Record<string, string>)[a] ?? '';

/**
 * What a blocked actor waits for: none of its rows in its current state can
 * step (every step function returns null for every candidate event).
 */
export function protocolWaitingFor(
  p: Protocol,
): (s: ModelSnapshot<HandoffCtx>, actor: string) => string | undefined {
  return (s, actor) => {
    const a = actor as Actor;
    const state = stateOf(s, a);
    if (p.finals[a]?.includes(state)) return undefined;
    const rows = p.rows.filter((r) => r.actor === a && r.from === state);
    if (rows.some((r) => candidates(r).some((ev) => r.step(s.context, ev) !== null))) return undefined;
    return p.waits[`${a}.${state}`] ?? `in ${state}, with no call it can make`;
  };
}
