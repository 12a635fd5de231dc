/**
 * Replay one conformance path on a target: the adapter's fixture, then each
 * step through the adapter (internal steps skipped), every call's result
 * compared with the results the model allows given what the kernel did so far
 * (replay-model.ts). A kernel splat fails the step unless the model predicts a
 * WARN or BUG there. With fail-nth on a step, a call that failed by the
 * injected fault must leave the model's state as it was: the replay goes on
 * from the states before the call, and every later result must still fit.
 */
import type { EventObject } from 'xstate';
import type { ResolvedVariant } from '../explorer/model.ts';
import {
  type Adapter,
  type Facts,
  type Mapping,
  type Observation,
  type OpRecord,
  PathRun,
  type ReplayTarget,
  sameFacts,
  Unreplayable,
} from './adapters/adapter.ts';
import type { ConformancePath } from './paths.ts';
import { lockdepReports, SYNC_MARKER, splitLockdep } from './qemu/kernel-log.ts';
import { ModelTracker, normalErrno } from './replay-model.ts';

export type StepKind = Mapping['kind'];

export interface FactsReport {
  readonly observed?: Facts;
  readonly predicted: readonly Facts[];
  readonly ok: boolean;
  /** Why they were not compared (a call left in flight). */
  readonly notCompared?: string;
}

export interface StepReport {
  readonly index: number;
  readonly actor: string;
  readonly event: EventObject;
  readonly kind: StepKind;
  /** The path's own prediction (the interleaving it was generated with). */
  readonly predicted?: string;
  /** Every result the model allows here, given the kernel's results so far. */
  readonly allowed?: readonly string[];
  readonly observed?: string;
  readonly ok: boolean;
  readonly note?: string;
  readonly splat?: string;
  readonly ops: readonly OpRecord[];
  /** VmPin/VmLck and the like where the adapter observes them and they do not fit. */
  readonly observedVm?: Observation;
  readonly predictedVm?: readonly Observation[];
  /**
   * For a call whose mapping has facts (a load's page fault and SIGBUS): what the kernel did,
   * what the model predicts from the states the call could be made in (with the observed
   * result), and whether they agree; or why they were not compared.
   */
  readonly facts?: FactsReport;
  /** Lockdep reports the kernel printed while this step's call ran (attached, not compared). */
  lockdep?: string[];
  /** Kernel log length when the call started (to attribute later lockdep reports). */
  readonly logAt?: number;
}

/**
 * 'kernel-bug': the model predicts a BUG_ON and the kernel hit it (the oops killed the caller);
 * the run restarts the VM before the next path.
 */
export type PathStatus = 'match' | 'kernel-bug' | 'diverge' | 'unreplayable' | 'setup-error';

export interface PathReport {
  readonly id: string;
  readonly status: PathStatus;
  readonly steps: readonly StepReport[];
  /** Index of the failing step (divergence, unreplayable or setup error inside a step). */
  readonly failedStep?: number;
  readonly reason?: string;
  /** Kernel log lines around the failure (or the whole path's lines when short). */
  readonly log?: readonly string[];
  /** Shim ops of the fixture. */
  readonly fixture: readonly OpRecord[];
  readonly seconds: number;
  /**
   * Calls left blocked for good (a deadlock the model predicts) or a BUG: the target's processes
   * are stuck, so the teardown was skipped and the run restarts the target before the next path.
   */
  readonly restartTarget?: boolean;
}

export interface ReplayOptions {
  /** Unique per path: the prefix of its actors' names. */
  readonly prefix: string;
  readonly uuids: readonly string[];
  /** Inject a fault: fail-nth `nth` armed on the call at path step `step` (0-based). */
  readonly failAt?: { readonly step: number; readonly nth: number };
  /** Timeout of a call the model says returns (TCG is slow). */
  readonly callTimeoutMs?: number;
  /** Timeout of a call the model says blocks for good. */
  readonly blockedTimeoutMs?: number;
  /** Timeout of a call that may hit a BUG_ON (the oops kills the caller, which never answers). */
  readonly bugTimeoutMs?: number;
  /** How long the calls a path leaves in flight get to return late at its end. */
  readonly settleMs?: number;
  /**
   * Every call must give the path's own prediction (the interleaving it was made from, e.g.
   * a deadlock counterexample), not just some result the model allows in another interleaving.
   */
  readonly strict?: boolean;
  /**
   * Called before each call step's call (with its index) and once before the teardown ('end'):
   * the coverage run takes a gcov snapshot there (conformance/coverage/), so the kernel code a
   * step reached is told apart from the fixture's, the next step's and the teardown's.
   */
  readonly mark?: (at: number | 'end') => Promise<void>;
}

const BASE_EVENT = (type: string) => ({ type }) as { type: string } & Record<string, unknown>;

/** The event types the adapter declares absent on this target. */
export function absentTypes(adapter: Adapter, variant: string): Set<string> {
  return new Set(adapter.eventTypes.filter((t) => adapter.map(BASE_EVENT(t), '', variant).kind === 'absent'));
}

/** WARN/BUG bookkeeping a model may keep: ioas-style `k.warn`, type1-style `kernelBug`. */
const splatMark = (c: any): string => `${c?.k?.warn?.length ?? 0}|${c?.kernelBug === true}`;

/** A result that is itself a kernel splat (type1's driver unpin after close: 'WARN'; BUG_ON: 'BUG'). */
const SPLAT_RESULTS = new Set(['WARN', 'BUG']);

/** An oops from a BUG_ON: the caller was killed and never answers. */
const BUG_SPLAT = /kernel BUG at |\bOops: /;

export async function replayPath(
  variant: ResolvedVariant,
  adapter: Adapter,
  path: ConformancePath,
  target: ReplayTarget,
  opts: ReplayOptions,
): Promise<PathReport> {
  const started = performance.now();
  const run = new PathRun(target, opts.prefix, opts.uuids);
  const tracker = new ModelTracker(variant, absentTypes(adapter, variant.name));
  const logStart = target.log().length;
  const steps: StepReport[] = [];
  const finish = async (status: PathStatus, extra: Partial<PathReport> = {}): Promise<PathReport> => {
    // The kernel log up to the failure (before the teardown adds its own lines).
    const all = target.log().slice(logStart);
    attachLockdep(steps, all, logStart);
    const lines = all.filter((l) => !SYNC_MARKER.test(l));
    await opts.mark?.('end');
    if (!extra.restartTarget) {
      try {
        await adapter.teardown(run, variant.name);
      } catch {
        // best effort: a diverged path may have left the fixture in any state
      }
    }
    return {
      id: path.id,
      status,
      steps,
      fixture,
      seconds: (performance.now() - started) / 1000,
      ...(status !== 'match' && status !== 'kernel-bug' && { log: lines.slice(-60) }),
      ...extra,
    };
  };

  let fixture: OpRecord[] = [];
  try {
    await adapter.setup(run, variant.name);
  } catch (e) {
    fixture = [...run.ops];
    return finish(e instanceof Unreplayable ? 'unreplayable' : 'setup-error', {
      reason: (e as Error).message,
    });
  }
  fixture = run.ops.splice(0);
  /** Model actor → the step that completes its call left in flight (undefined: none does). */
  const inFlight = new Map<string, number | undefined>();
  let bug = false;

  for (const [index, step] of path.steps.entries()) {
    const m = adapter.map(step.event as any, step.actor, variant.name, run);
    const base = {
      index,
      actor: step.actor,
      event: step.event,
      kind: m.kind,
      predicted: pathPrediction(path, index),
    };
    if (inFlight.has(step.actor) && inFlight.get(step.actor) === index) {
      // The path's step that ends the call left in flight: its late result must be the model's.
      const done = await settleOne(step.actor, index);
      if (done) return done;
    }
    if (m.kind === 'internal' || m.kind === 'absent') {
      steps.push({ ...base, ok: true, ops: [], ...(m.kind === 'absent' && { note: m.why }) });
      continue;
    }
    if (adapter.unfit) {
      const reasons = tracker.restrict((c) => adapter.unfit?.(c, step.event, variant.name) ?? null);
      if (reasons.length) {
        steps.push({ ...base, ok: false, ops: [] });
        return finish('unreplayable', {
          failedStep: index,
          reason: `the fixture cannot stand for the model's state before this call: ${reasons.join('; ')}`,
        });
      }
    }
    const allowed = tracker.allowed(step.actor, step.event);
    if (allowed.size === 0) {
      steps.push({ ...base, ok: false, ops: [] });
      return finish('unreplayable', { failedStep: index, reason: notEnabled(step.event) });
    }
    const onlyBlocked = allowed.size === 1 && allowed.has('blocked');
    // A call the path has return only after other actors' calls (or never): it must stay in
    // flight (blocked) while they run; its result is checked where the path ends it.
    const ends = completionStep(path, index);
    const leaveInFlight =
      step.result === 'blocked' &&
      path.steps.slice(index + 1, ends ?? path.steps.length).some((s) => s.call && s.actor !== step.actor);
    run.expectBlocked = leaveInFlight;
    run.timeoutMs =
      onlyBlocked || leaveInFlight || (opts.strict && base.predicted === 'blocked')
        ? (opts.blockedTimeoutMs ?? 3000)
        : allowed.has('BUG')
          ? (opts.bugTimeoutMs ?? 10_000)
          : (opts.callTimeoutMs ?? 30_000);
    const logAt = target.log().length;
    const injecting = opts.failAt?.step === index;
    await opts.mark?.(index);
    if (injecting) run.failNth = opts.failAt?.nth;
    const marksBefore = new Set(tracker.values(splatMark));
    let obs: Awaited<ReturnType<typeof m.run>>;
    try {
      obs = await m.run(run);
    } catch (e) {
      steps.push({ ...base, ok: false, ops: run.ops.splice(0) });
      const status = e instanceof Unreplayable ? 'unreplayable' : 'setup-error';
      return finish(status, { failedStep: index, reason: (e as Error).message });
    }
    const ops = run.ops.splice(0);
    // Lockdep reports are attached to the step (finish()), the rest of a splat is compared.
    const splat = splitLockdep(obs.splat).other;
    const observed =
      obs.status === 'done'
        ? normalErrno(obs.errno)
        : obs.status === 'blocked'
          ? splat && BUG_SPLAT.test(splat)
            ? 'BUG'
            : 'blocked'
          : 'TARGET_DEAD';
    const allowedNames = [...allowed.keys()].sort();
    let facts: FactsReport | undefined;
    const report = (ok: boolean, note?: string): StepReport => ({
      ...base,
      allowed: m.compare === 'success' ? ['0'] : allowedNames,
      observed,
      ok,
      ops,
      logAt,
      ...(obs.splat && { splat: obs.splat }),
      ...(note && { note }),
      ...(facts && { facts }),
    });
    if (
      opts.strict &&
      base.predicted !== undefined &&
      observed !== normalErrno(base.predicted) &&
      !leaveInFlight
    ) {
      steps.push(report(false));
      return finish('diverge', {
        failedStep: index,
        reason: `${step.event.type} by ${step.actor}: observed ${observed}, the path predicts ${base.predicted} (--strict)`,
      });
    }
    if (
      leaveInFlight &&
      observed !== 'blocked' &&
      observed !== 'BUG' &&
      (opts.strict || !allowed.has(observed))
    ) {
      // The kernel did not take the path's interleaving (the call ended before the next one
      // could start) and the model does not allow that result here, or --strict asks for the
      // path's own interleaving. A result the model allows goes on from the states where the call
      // returned, as every other step does (bar-mmap's reset and faults finish in microseconds).
      steps.push(report(false));
      return finish('unreplayable', {
        failedStep: index,
        reason: `${step.event.type} by ${step.actor} returned ${observed} before the path's next call could run while it is in flight`,
      });
    }
    if (leaveInFlight && observed === 'blocked') {
      // The path has this call return at no later step: it stays in flight while the path goes
      // on, in any model state where the caller has not returned (checked again at the end).
      const pending = tracker.inFlight(step.actor, step.event);
      if (pending.size === 0) {
        steps.push(report(false));
        return finish('diverge', {
          failedStep: index,
          reason: `${step.event.type} by ${step.actor}: still running, the model has it return at once`,
        });
      }
      tracker.commit(pending);
      inFlight.set(step.actor, ends);
      if (m.facts)
        facts = { predicted: [], ok: true, notCompared: 'left in flight: its late result carries no facts' };
      steps.push(report(true, `in flight until ${ends === undefined ? 'the end' : `step ${ends + 1}`}`));
      continue;
    }

    if (injecting && obs.failInjected && observed !== '0') {
      // The call failed by the injected fault: it must have changed nothing, so the
      // model stays where it was before the call, and the rest of the path must fit that.
      steps.push(
        report(true, `fail-nth ${opts.failAt?.nth}: ${observed}; model state kept as before the call`),
      );
      continue;
    }
    let states: Map<string, unknown> | undefined;
    if (m.compare === 'success') {
      if (observed === '0') {
        states = new Map();
        for (const [r, set] of allowed) if (r !== 'blocked') for (const [k, s] of set) states.set(k, s);
        if (states.size === 0) states = undefined;
      }
    } else {
      states = allowed.get(observed);
    }
    if (states && m.facts && obs.status === 'done') {
      // Facts: keep the states after the call whose prediction, from the state the call was made
      // in, is what the kernel did.
      const seen = m.facts.observed(obs);
      const predicted = new Map<string, Facts>();
      const kept = new Set<string>();
      for (const { before, results } of tracker.resultsFrom(step.actor, step.event)) {
        const after = results.get(observed);
        if (!after) continue;
        const p = m.facts.predicted(tracker.engine.view(before).context, step.actor, observed);
        predicted.set(JSON.stringify(p), p);
        if (sameFacts(p, seen)) for (const k of after.keys()) kept.add(k);
      }
      const fitting = new Map([...states].filter(([k]) => kept.has(k)));
      facts = { observed: seen, predicted: [...predicted.values()], ok: fitting.size > 0 };
      if (fitting.size === 0) {
        steps.push(report(false));
        return finish('diverge', {
          failedStep: index,
          reason: `${step.event.type} by ${step.actor}: ${observed} with ${JSON.stringify(seen)} observed, the model predicts ${observed} with ${[...predicted.keys()].join(' | ')}`,
        });
      }
      states = fitting;
    }
    if (!states) {
      steps.push(report(false));
      return finish('diverge', {
        failedStep: index,
        reason: `${step.event.type} by ${step.actor}: observed ${observed}, the model allows ${m.compare === 'success' ? '0' : allowedNames.join(' | ')}`,
      });
    }
    // A splat matches only a step after which the model records a WARN or BUG, and vice versa.
    const predictsSplat = (c: any) =>
      !marksBefore.has(splatMark(c)) || SPLAT_RESULTS.has(String(c?.ret?.[step.actor]));
    const warned = new Map([...states].filter(([, s]) => predictsSplat(tracker.engine.view(s).context)));
    const quiet = new Map([...states].filter(([k]) => !warned.has(k)));
    const fitting = splat ? warned : quiet;
    if (fitting.size === 0) {
      steps.push(report(false));
      return finish('diverge', {
        failedStep: index,
        reason: splat
          ? `${step.event.type} by ${step.actor}: the kernel printed a splat the model does not predict`
          : `${step.event.type} by ${step.actor}: the model predicts a WARN/BUG here, the kernel printed none`,
      });
    }
    tracker.commit(fitting);
    if (observed === 'BUG') bug = true;
    // (not while a call is in flight: its process is busy, and the kernel is mid-call)
    if (adapter.observe && adapter.fits && obs.status === 'done' && inFlight.size === 0) {
      const seen = await adapter.observe(run);
      const predicted = tracker.values((c) => adapter.predict?.(c, seen) ?? {});
      ops.push(...run.ops.splice(0));
      if (tracker.filter((c) => adapter.fits?.(c, seen, variant.name) ?? true) === 0) {
        steps.push({ ...report(false), observedVm: seen, predictedVm: predicted });
        return finish('diverge', {
          failedStep: index,
          reason: `${step.event.type} by ${step.actor}: ${JSON.stringify(seen)} observed, the model allows ${predicted.map((p) => JSON.stringify(p)).join(' | ')}`,
        });
      }
    }
    steps.push(report(true));
  }
  if (inFlight.size > 0) return settleInFlight([...inFlight.keys()]);
  return finish(bug ? 'kernel-bug' : 'match', { ...(bug && { restartTarget: true }) });

  /** The late result of a call left in flight; undefined when it still blocks. */
  async function lateResult(actor: string): Promise<string | undefined> {
    const late = await target
      .actor(run.actorName(actor))
      .settle?.(opts.settleMs ?? 5000)
      .catch(() => undefined);
    if (!late || late.status === 'blocked') return undefined;
    const splat = splitLockdep(late.splat).other;
    if (late.status === 'done') return normalErrno(late.errno);
    return splat && BUG_SPLAT.test(splat) ? 'BUG' : 'TARGET_DEAD';
  }

  /** At the step that ends a call left in flight: a divergence report, or undefined when it fits. */
  async function settleOne(actor: string, index: number): Promise<PathReport | undefined> {
    inFlight.delete(actor);
    const r = await lateResult(actor);
    const want = path.steps[index].result;
    if (opts.strict && want !== undefined && r !== normalErrno(want)) {
      return finish('diverge', {
        failedStep: index,
        reason: `the call of ${actor} left in flight gave ${r ?? 'still blocked'}, the path predicts ${want} (--strict)`,
      });
    }
    if (r === undefined) {
      return finish('diverge', {
        failedStep: index,
        reason: `the call of ${actor} left in flight still blocks where the path has it return`,
      });
    }
    if (tracker.keepReturned(actor, r) === 0) {
      return finish('diverge', {
        failedStep: index,
        reason: `the call of ${actor} left in flight returned ${r}, which the model does not allow here`,
      });
    }
    if (r === 'BUG') bug = true;
    return undefined;
  }

  /** At the end: calls left in flight that still block must be stuck for good in the model. */
  async function settleInFlight(actors: readonly string[]): Promise<PathReport> {
    const last = steps.length - 1;
    const stuck: string[] = [];
    for (const a of actors) {
      const r = await lateResult(a);
      if (r === undefined) {
        stuck.push(a);
        continue;
      }
      if (opts.strict) {
        return finish('diverge', {
          failedStep: last,
          reason: `the call of ${a} the path leaves blocked returned ${r} late (--strict)`,
        });
      }
      if (tracker.keepReturned(a, r) === 0) {
        return finish('diverge', {
          failedStep: last,
          reason: `the call of ${a} left in flight returned ${r} late, which the model does not allow`,
        });
      }
    }
    if (stuck.length === 0)
      return finish(bug ? 'kernel-bug' : 'match', { ...(bug && { restartTarget: true }) });
    if (tracker.keepStuck(stuck) === 0) {
      return finish('diverge', {
        failedStep: last,
        reason: `${stuck.join(', ')} blocked: the model has no state in which they cannot return`,
      });
    }
    return finish('match', {
      restartTarget: true,
      reason: `deadlock: the calls of ${stuck.join(', ')} are still blocked, as the model predicts`,
    });
  }
}

/** Each lockdep report of the path's log goes to the call that was running when it started. */
function attachLockdep(steps: StepReport[], lines: readonly string[], logStart: number): void {
  for (const r of lockdepReports(lines)) {
    const at = logStart + r.index;
    const step = steps.filter((s) => s.logAt !== undefined && s.logAt <= at).at(-1);
    if (step) step.lockdep = [...(step.lockdep ?? []), r.text];
  }
}

/** The later step of the same actor that ends the call at `index` (it shows a result), if any. */
function completionStep(path: ConformancePath, index: number): number | undefined {
  const actor = path.steps[index].actor;
  for (let j = index + 1; j < path.steps.length; j++) {
    const s = path.steps[j];
    if (s.actor !== actor) continue;
    if (s.call) return undefined;
    if (s.result !== undefined && s.result !== 'blocked') return j;
  }
  return undefined;
}

/**
 * The path's own prediction for a call: its result, or, for a call whose model records the
 * result when it returns, that of the actor's next step that shows one before its next call.
 */
function pathPrediction(path: ConformancePath, index: number): string | undefined {
  const step = path.steps[index];
  if (!step.call || step.result !== undefined) return step.result;
  for (const later of path.steps.slice(index + 1)) {
    if (later.actor !== step.actor) continue;
    if (later.call) return undefined;
    if (later.result !== undefined) return later.result;
  }
  return undefined;
}

const notEnabled = (e: EventObject) =>
  `${e.type} ${JSON.stringify(e)} is not enabled in any model state consistent with the kernel so far ` +
  '(the path relies on a step this target cannot take)';
