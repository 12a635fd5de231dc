/**
 * The reference engine: xstate's own pure `transition()`. Every other engine
 * is tested against this one, and every counterexample is re-executed on it
 * before it is printed.
 */
import {
  type AnyMachineSnapshot,
  type AnyStateMachine,
  getInitialSnapshot,
  type StateNode,
  type StateValue,
  transition,
} from 'xstate';
import { canonical } from './canonical.ts';
import { type Engine, machineTransitionIds, transitionId } from './engine.ts';
import { Codec, Words } from './codec.ts';

/** The actors of a machine: its top-level parallel regions, or the machine itself when its root is not parallel. */
export function actorNodes(machine: AnyStateMachine): { name: string; node: StateNode<any, any> }[] {
  const root = machine.root;
  if (root.type === 'parallel') return Object.entries(root.states).map(([name, node]) => ({ name, node }));
  return [{ name: machine.id, node: root }];
}

/** Canonical encoding shared by both engines, so their fingerprints agree. */
export function encodeState(value: unknown, context: unknown): string {
  return `${canonical(value, 'state value')}|${canonical(context)}`;
}

/** The region (actor) a state node belongs to. */
function regionOf(node: StateNode<any, any>, root: StateNode<any, any>): StateNode<any, any> {
  let n = node;
  while (n.parent && n.parent !== root) n = n.parent;
  return n;
}

export function createReferenceEngine(
  machine: AnyStateMachine,
  codec = new Codec(),
): Engine<AnyMachineSnapshot> {
  const actors = actorNodes(machine);
  const parallel = machine.root.type === 'parallel';
  const transitionIds = machineTransitionIds(machine);
  const index = new Map(transitionIds.map((id, i) => [id, i]));
  const fired = new Uint8Array(transitionIds.length);
  let last: number[] = [];
  const scratch = new Words();
  // A packed snapshot is its state value's words, then its context's: both plain data.
  const pack = (s: AnyMachineSnapshot, out: Words) => {
    codec.encode(out, s.value, 'state value');
    codec.encode(out, s.context, 'context');
  };
  const idsOf = (s: AnyMachineSnapshot, event: { type: string }) =>
    machine.getTransitionData(s, event).map((t) => {
      const defs = t.source.transitions.get(t.eventType) ?? [];
      return transitionId(t.source.id, t.eventType, defs.indexOf(t));
    });
  return {
    kind: 'reference',
    actors: actors.map((a) => a.name),
    transitionIds,
    fired,
    lastFired: () => last,
    initial: () => getInitialSnapshot(machine) as AnyMachineSnapshot,
    step(s, event) {
      if (s.status !== 'active' || !s.can(event)) return null;
      const next = transition(machine, s, event)[0] as AnyMachineSnapshot;
      last = idsOf(s, event).map((id) => index.get(id) ?? -1);
      for (const k of last) if (k >= 0) fired[k] = 1;
      return next;
    },
    withContext: (s, context) => machine.resolveState({ value: s.value, context }) as AnyMachineSnapshot,
    view: (s) => s,
    codec,
    pack,
    unpack(words, start, _end, options) {
      // The codec decodes one value at a time: the state value, then the context after it.
      const value = codec.decodeState(words, start, 0);
      const { context } = codec.decodeState(words, value.end, 0, options);
      return machine.resolveState({ value: value.context as StateValue, context }) as AnyMachineSnapshot;
    },
    packedFingerprint: (words, start, end) => codec.fingerprint(words, start, end),
    fingerprint(s) {
      scratch.length = 0;
      pack(s, scratch);
      return codec.fingerprint(scratch.buf, 0, scratch.length);
    },
    encode: (s) => encodeState(s.value, s.context),
    terminated(s) {
      const value = s.value as Record<string, unknown> | string;
      return actors.map(({ name, node }) => {
        const v = parallel ? (value as Record<string, unknown>)[name] : value;
        return typeof v === 'string' && node.states[v]?.type === 'final';
      });
    },
    actorsOf(s, event) {
      if (s.status !== 'active' || !s.can(event)) return [];
      const names = new Set<string>();
      for (const t of machine.getTransitionData(s, event)) {
        const region = regionOf(t.source, machine.root);
        names.add(parallel ? region.key : machine.id);
      }
      return actors.map((a) => a.name).filter((n) => names.has(n));
    },
    transitionsOf(s, event) {
      if (s.status !== 'active' || !s.can(event)) return [];
      return idsOf(s, event);
    },
  };
}
