/**
 * What an exploration produces: plain data, shared by the reports (text,
 * Mermaid, JSON) and by conformance/, which replays traces without the explorer.
 */
import type { EventObject, StateValue } from 'xstate';
import type { Coverage } from './coverage.ts';

/** 'unreachable': a `sometimes` property no reachable state satisfies (its trace is empty). */
export type ViolationKind = 'invariant' | 'deadlock' | 'liveness' | 'unrecoverable' | 'unreachable';

export interface TraceStep {
  /** The actor (top-level region) whose transition took the event; 'a+b' if several did. */
  readonly actor: string;
  readonly event: EventObject;
  /** The model's uAPI label of the event (its `label`), when it gives one. */
  readonly label?: string;
  /** The state value after the step. */
  readonly state: StateValue;
  /** True when the event is one of the model's uAPI calls. */
  readonly call: boolean;
  /** The predicted result ('0', an errno name, 'blocked'), where the model records one. */
  readonly result?: string;
  /** Context fields that this step changed, as dotted paths with before and after values. */
  readonly changes: readonly Change[];
}

export interface Change {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
  /** For a list that grew or shrank: the elements it gained and lost (a multiset difference). */
  readonly added?: readonly unknown[];
  readonly removed?: readonly unknown[];
}

/** An actor that has not terminated at the end of a deadlock or liveness trace, and what it waits for. */
export interface Waiting {
  readonly actor: string;
  /** The model's `waitingFor` text, or a generic one when the model gives none. */
  readonly for: string;
}

export interface Violation {
  readonly property: string;
  readonly kind: ViolationKind;
  /** Steps from the initial state. For a lasso (liveness) the cycle is trace[cycleStart..]. */
  readonly trace: readonly TraceStep[];
  /** Liveness only: index of the first step of the cycle; the last step returns to the state before it. */
  readonly cycleStart?: number;
  /** The initial state value, so that a reader sees where step 1 starts. */
  readonly initial: StateValue;
  /** Deadlock and liveness: the actors still running in the last state, and what each waits for. */
  readonly waiting?: readonly Waiting[];
  /** The trail file this counterexample was written to (`vfio-mc replay` reads it). */
  readonly trail?: string;
  /** Found by a search under partial-order reduction: shortest in the reduced graph only (`--shortest` finds a shortest one). */
  readonly reducedOnly?: boolean;
}

export type PropertyStatus = 'holds' | 'violated' | 'not checked' | 'unknown';

export interface PropertyVerdict {
  readonly name: string;
  readonly kind: 'invariant' | 'deadlock' | 'leadsTo' | 'eventually' | 'recoverable' | 'sometimes';
  readonly status: PropertyStatus;
  /** Why a property is 'not checked' or 'unknown' (for example: search cut off by a bound). */
  readonly note?: string;
  /** leadsTo whose premise no explored state satisfies: it holds, for no reason. */
  readonly vacuous?: boolean;
}

export interface ExploreStats {
  readonly states: number;
  readonly transitions: number;
  readonly depth: number;
  readonly seconds: number;
  readonly statesPerSecond: number;
  readonly peakMemoryMB: number;
  /** Megabytes of frontier written to disk because of --memory (0 when it all fit). */
  readonly spilledMB: number;
  /** TLC's optimistic estimate of a fingerprint collision: n * (t - n) / 2^64. */
  readonly collisionProbability: number;
}

export interface ExploreResult extends ExploreStats {
  readonly model: string;
  readonly variant: string;
  /** The model parameters the variant was built with. */
  readonly params: Readonly<Record<string, number>>;
  readonly engine: 'compiled' | 'reference';
  /** Why the compiled engine was not used, when it was not. */
  readonly engineNote?: string;
  /** Whether checking mode was on (model-checks.ts). */
  readonly checking: boolean;
  /** State-space reductions applied ('symmetry'): the states counted are orbit representatives. */
  readonly reductions: readonly string[];
  /**
   * What the verdicts rest on beyond the search itself: a reduction run
   * unchecked (`--view=unchecked`). Absent when every reduction was checked
   * on every step. Every report prints them beside the verdicts.
   */
  readonly assumptions?: readonly string[];
  /** Worker threads the search ran on (1: the one-thread search). */
  readonly workers: number;
  /** Partial-order reduction (`--por`): states expanded, those expanded with one actor's steps only, restarts. */
  readonly partialOrder?: {
    readonly expanded: number;
    readonly reduced: number;
    /** Searches started again because an invariant read a path not yet treated as visible. */
    readonly restarts: number;
    /** Whether every step the search evaluated had its footprint checked (off with --no-check). */
    readonly checked: boolean;
    /** Dependencies through control state found in the machine (stateIn, always, targets in another actor), treated as dependent. */
    readonly control?: readonly string[];
  };
  /** Which transitions fired, which never did, and the event types never enabled. */
  readonly coverage: Coverage;
  /** True when every reachable state was explored (no bound cut the search). */
  readonly complete: boolean;
  /** Which bound cut the search, when one did ('memory': the visited set outgrew --memory; 'interrupted': SIGINT or SIGTERM). */
  readonly cutBy?: 'depth' | 'maxStates' | 'memory' | 'interrupted';
  readonly bounds: { readonly depth: number; readonly maxStates: number };
  /**
   * True when the depth bound was chosen (--depth, or the model's own bounds), not the
   * default: a search cut by it is "complete to depth N" (exit-codes.ts), not cut short.
   */
  readonly depthExplicit?: boolean;
  readonly properties: readonly PropertyVerdict[];
  readonly violations: readonly Violation[];
}
