/**
 * What the server sends the page: plain JSON, typed once here for both ends.
 * Everything the model says is pre-formatted on the server (labels, results,
 * changed values), so the page shows the reports' own words.
 */

/** A changed context field: its dotted path (`t1.dmas[0].mapped`) and `before→after` as the reports print it. */
export interface ChangeView {
  readonly path: string;
  readonly text: string;
}

/** One step of a path: who took it, in the model's uAPI words, with its result and what it changed. */
export interface StepView {
  /** The event as the address names it. */
  readonly token: string;
  /** The actors whose transitions took it. */
  readonly actors: readonly string[];
  /** The model's label (else the event's name) and the predicted result: `ioctl(...) = 0`, `... … blocks`. */
  readonly text: string;
  readonly changes: readonly ChangeView[];
}

export interface EnabledEvent {
  readonly token: string;
  /** The model's uAPI label, else the event's name. */
  readonly label: string;
  readonly actors: readonly string[];
}

export interface ActorView {
  readonly name: string;
  /** Its state, as a dotted path (`idle`, `unmapping.listLocked`). */
  readonly state: string;
  readonly terminated: boolean;
  /** What the model says it waits for (its `waitingFor`), or why it cannot move. */
  readonly waiting?: string;
  readonly enabled: readonly EnabledEvent[];
  /** The diagram node ids of the states it is in (its state and their parents). */
  readonly active: readonly string[];
}

export interface InvariantView {
  readonly name: string;
  readonly status: 'holds' | 'violated' | 'error';
  /** When the invariant threw: what it threw. */
  readonly error?: string;
}

export interface StateView {
  readonly model: string;
  readonly variant: string;
  /** Model parameters, as `--set` takes them ('' for none). */
  readonly set: string;
  /** Every step of the address's path that the model accepts. */
  readonly path: readonly StepView[];
  /** How many of them are taken in the state shown. */
  readonly at: number;
  /** What was wrong with the address (an unknown event, a step the machine rejects), when something was. */
  readonly error?: string;
  readonly actors: readonly ActorView[];
  readonly context: unknown;
  /** The context fields the step into this state changed. */
  readonly changed: readonly ChangeView[];
  /** The transitions that step took, by name (`vmm.idle#VmmMapDma[0]`). */
  readonly fired: readonly string[];
  readonly invariants: readonly InvariantView[];
  /** No event is enabled and some actor has not terminated. */
  readonly deadlock: boolean;
  /** Every actor has terminated. */
  readonly done: boolean;
}

/** An actor's state diagram, laid out by ELK (server side); coordinates in SVG user units. */
export interface Diagram {
  readonly actor: string;
  readonly width: number;
  readonly height: number;
  readonly nodes: readonly DiagramNode[];
  readonly edges: readonly DiagramEdge[];
}

export interface DiagramNode {
  /** The state's path from the actor (`vmm.idle`), as transition names use it; `<actor>.__initial` is the start dot. */
  readonly id: string;
  readonly label: string;
  readonly kind: 'state' | 'final' | 'initial';
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface DiagramEdge {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  /** The machine transitions drawn as this edge, each a line of its label. */
  readonly transitions: readonly {
    readonly name: string;
    readonly label: string;
    readonly x: number;
    readonly y: number;
  }[];
  /** The polyline: start, bends, end. */
  readonly points: readonly { readonly x: number; readonly y: number }[];
}

export interface VariantInfo {
  readonly name: string;
  readonly description: string;
}

export interface ModelInfo {
  readonly id: string;
  readonly description: string;
  readonly variants: readonly VariantInfo[];
  readonly defaultVariant: string;
  readonly params: Readonly<
    Record<string, { default: number; min: number; max: number; description: string }>
  >;
  /** The variant asked for: its actors, properties and diagrams. */
  readonly variant: string;
  readonly set: string;
  readonly actors: readonly string[];
  readonly temporal: readonly { readonly name: string; readonly kind: string }[];
  readonly diagrams: readonly Diagram[];
}

/** A property's verdict in a finished run, and the counterexample's path when it has one. */
export interface RunVerdict {
  readonly name: string;
  readonly kind: string;
  readonly status: string;
  readonly note?: string;
  /** Whether the variant declares it violated (`expect`). */
  readonly expectedViolated: boolean;
  readonly counterexample?: {
    readonly description: string;
    readonly path: readonly string[];
    readonly steps: number;
  };
}

export interface RunReport {
  readonly states: number;
  readonly transitions: number;
  readonly depth: number;
  readonly seconds: number;
  readonly complete: boolean;
  readonly cutBy?: string;
  readonly verdicts: readonly RunVerdict[];
  /** Transition names that never fired in this search. */
  readonly neverFired: readonly string[];
  /** Of them, those the variant lists as knowingly unreachable, with the reason. */
  readonly unreachable: Readonly<Record<string, string>>;
  readonly transitionCount: number;
}

export type RunStatus =
  | { readonly status: 'none' }
  | {
      readonly status: 'running';
      readonly progress?: { readonly states: number; readonly depth: number; readonly seconds: number };
    }
  | { readonly status: 'done'; readonly report: RunReport }
  | { readonly status: 'failed'; readonly error: string };

/** Every error the API returns: one message, said as the CLI would. */
export interface ApiError {
  readonly error: string;
}
