/**
 * An engine computes a machine's successor states. Two exist:
 * - engine-reference.ts: xstate's own `transition()`, the reference semantics;
 * - engine-compiled.ts: the machine's guards and assigns evaluated directly,
 *   many times faster, differentially tested against the reference.
 * The search (bfs.ts) works through this interface only.
 */
import type { AnyStateMachine, EventObject, StateNode } from 'xstate';
import type { Codec, DecodeMemo, Words } from './codec.ts';
import type { Fingerprint } from './fingerprint.ts';
import type { ModelSnapshot } from './model.ts';

export interface Engine<S = unknown> {
  readonly kind: 'compiled' | 'reference';
  /** The actors: the machine's top-level parallel regions, in document order. */
  readonly actors: readonly string[];
  initial(): S;
  /** The state after `event`, or null when the machine does not accept it in `s` (no enabled transition). */
  step(s: S, event: EventObject): S | null;
  /** What properties and event generators see. */
  view(s: S): ModelSnapshot;
  /** The 64-bit fingerprint of (state value, context); both engines compute the same one. */
  fingerprint(s: S): Fingerprint;
  /** The codec that packs this engine's states (codec.ts); its dictionary is the engine's own. */
  readonly codec: Codec;
  /** Append the state's words to `out`; with the memo of the state it was stepped from, shared objects are copied. */
  pack(s: S, out: Words, memo?: DecodeMemo): void;
  /** The state packed at words[start, end); `memo` records where its objects came from, `freeze` freezes them. */
  unpack(words: Int32Array, start: number, end: number, options?: { memo?: DecodeMemo; freeze?: boolean }): S;
  /** The fingerprint of a packed state: fingerprint() of the state it packs. */
  packedFingerprint(words: Int32Array, start: number, end: number): Fingerprint;
  /** Canonical encoding of (state value, context): equal states, equal strings (for tests and debugging). */
  encode(s: S): string;
  /** Per actor (same order as `actors`), whether it is in a final state. */
  terminated(s: S): readonly boolean[];
  /** The actors whose transitions take `event` in `s` (for traces); empty when it is not accepted. */
  actorsOf(s: S, event: EventObject): string[];
  /** The machine transitions that take `event` in `s`, by id (see transitionId); empty when it is not accepted. */
  transitionsOf(s: S, event: EventObject): string[];
  /** Every transition of the machine, by id, in document order: what coverage is counted against. */
  readonly transitionIds: readonly string[];
  /** fired[k] is 1 once a step has taken transitionIds[k] (coverage). */
  readonly fired: Uint8Array;
  /** The transitions (indices into transitionIds) that the last successful step took. */
  lastFired(): readonly number[];
  /** The same control state with another context (checking mode re-runs a step on a copy). */
  withContext(s: S, context: unknown): S;
  /** A reduction that must ask the search about its visited set (por.ts's cycle proviso) is told how, once. */
  attach?(query: SearchQuery): void;
}

/** What a search strategy answers a reduction about the states it has visited. */
export interface SearchQuery {
  /**
   * Whether the state was reached at a level no deeper than the one being
   * expanded: a superset of the states already expanded (Closed), which does
   * not depend on the order within a level.
   */
  closed(fp: Fingerprint): boolean;
}

export type AnyEngine = Engine<any>;

/**
 * A machine transition's stable id: its source state, event type and position
 * among that state's transitions for the event ('(machine).vmm.idle#VmmMapDma[0]').
 * Coverage of uAPI transitions is counted in these ids.
 */
export function transitionId(sourceId: string, eventType: string, index: number): string {
  return `${sourceId}#${eventType}[${index}]`;
}

/** Every transition of the machine, by transitionId, in document order. */
export function machineTransitionIds(machine: AnyStateMachine): string[] {
  const ids: string[] = [];
  const visit = (node: StateNode<any, any>) => {
    for (const [eventType, defs] of node.transitions) {
      defs.forEach((_, i) => ids.push(transitionId(node.id, eventType, i)));
    }
    for (const child of Object.values(node.states)) visit(child as StateNode<any, any>);
  };
  visit(machine.root);
  return ids;
}

/**
 * A transition's name in reports and in a model's `unreachable` list: its id
 * without the machine's id, so `vmm.idle#VmmMapDma[0]` (the actor, the state
 * path, the event, the branch).
 */
export function transitionName(id: string, machineId: string): string {
  return id.startsWith(`${machineId}.`) ? id.slice(machineId.length + 1) : id;
}
