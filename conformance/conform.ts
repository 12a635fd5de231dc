/**
 * `vfio-mc conform`: replay a model's conformance paths on a real kernel and
 * compare every call's result with what the model allows. One VM for the whole
 * set; each path runs in its own processes (actor names prefixed by the path
 * number) with its own fixture, and exits them at the end, so paths do not
 * share kernel objects.
 */
import { readJsonFile } from '../explorer/json-file.ts';
import type { EventObject } from 'xstate';
import type { AnyEngine } from '../explorer/engine.ts';
import { chooseEngine } from '../explorer/engine-choice.ts';
import { type Model, ModelError, type ResolvedVariant } from '../explorer/model.ts';
import type { Adapter, ReplayTarget } from './adapters/adapter.ts';
import { barMmapAdapter } from './adapters/bar-mmap.ts';
import { containerAdapter } from './adapters/container.ts';
import { deviceCloseAdapter } from './adapters/device-close.ts';
import { handoffAdapter } from './adapters/exec-handoff.ts';
import { ioasAdapter } from './adapters/ioas.ts';
import {
  type ConformancePath,
  checkPathFile,
  completionKeys,
  generatePaths,
  type PathFile,
} from './paths.ts';
import { type PathReport, replayPath } from './replay.ts';
import { lockdepSummary } from './qemu/kernel-log.ts';
import { homeStates } from './replay-model.ts';

export const ADAPTERS: Readonly<Record<string, Adapter>> = {
  container: containerAdapter,
  'device-close': deviceCloseAdapter,
  ioas: ioasAdapter,
  'exec-handoff': handoffAdapter,
  'bar-mmap': barMmapAdapter,
};

export function adapterFor(model: string, variant: string): Adapter {
  const a = ADAPTERS[model];
  if (!a)
    throw new ModelError(
      `no conformance adapter for model '${model}' (adapters: ${Object.keys(ADAPTERS).join(', ')})`,
    );
  if (!a.variants.includes(variant)) {
    throw new ModelError(
      `the ${model} adapter has no fixture for variant '${variant}' (replayable: ${a.variants.join(', ')})`,
    );
  }
  return a;
}

/** Deterministic mdev uuids: path n, device i. */
export const uuidFor = (n: number, i: number) =>
  `5f1d3a7e-0c0f-4c6b-9d6e-${(0xc0f000000000 + n * 16 + i).toString(16).padStart(12, '0')}`;

/**
 * The variant as the replay sees it: the driver steps its adapter replays (the pinning mdev's
 * vfio_pin_pages and vfio_unpin_pages) count as calls, like the uAPI calls. The target's
 * driver takes them only when a path says so, so they are never internal steps; paths cover
 * their transitions and results, and the coverage counts them.
 */
export function forReplay(variant: ResolvedVariant): ResolvedVariant {
  const adapter = adapterFor(variant.modelId, variant.name);
  const driver = adapter.eventTypes.filter(
    (t) => !variant.calls.has(t) && adapter.map({ type: t }, '', variant.name).kind === 'call',
  );
  if (driver.length === 0) return variant;
  return { ...variant, calls: new Set([...variant.calls, ...driver]) };
}

export async function loadPaths(variant: ResolvedVariant, file: string | undefined): Promise<PathFile> {
  const v = forReplay(variant);
  if (!file) return generatePaths(v);
  return checkPathFile(await readJsonFile(file), file, v);
}

export interface ConformRun {
  readonly variant: ResolvedVariant;
  readonly adapter: Adapter;
  readonly file: PathFile;
  readonly paths: readonly ConformancePath[];
  /** Global path numbers (index in the file), for uuids and actor prefixes. */
  readonly numbers: readonly number[];
}

export function planRun(
  model: Model,
  variantName: string | undefined,
  file: PathFile,
  only?: string,
): ConformRun {
  const variant = forReplay(model.variant(variantName));
  const adapter = adapterFor(model.id, variant.name);
  const numbered = file.paths.map((p, n) => ({ p, n }));
  const chosen = only ? numbered.filter(({ p }) => p.id === only) : numbered;
  if (only && chosen.length === 0) {
    throw new ModelError(
      `no path '${only}' in the path set (ids: ${file.paths.map((p) => p.id).join(', ')})`,
    );
  }
  return { variant, adapter, file, paths: chosen.map((c) => c.p), numbers: chosen.map((c) => c.n) };
}

export function allowList(run: ConformRun): string[] {
  const uuids = run.numbers.flatMap((n) =>
    Array.from({ length: run.adapter.uuidsPerPath }, (_, i) => uuidFor(n, i)),
  );
  return run.adapter.allow(uuids);
}

export interface ConformReport {
  readonly model: string;
  readonly variant: string;
  readonly paths: readonly PathReport[];
  readonly coverage: CoverageReport;
  /** Replayed steps (fixture ops excluded) and uAPI calls compared. */
  readonly steps: number;
  readonly calls: number;
  readonly seconds: number;
  readonly stepsPerSecond: number;
  readonly shimOpsPerSecond: number;
  /** Calls whose mapping compares facts besides the result (a load's page fault and SIGBUS). */
  readonly facts: FactsSummary;
}

export interface FactsSummary {
  /** The event types whose calls carry facts, and how many such calls the paths have. */
  readonly events: readonly string[];
  readonly calls: number;
  /** Compared (the call ran and returned), agreeing with the model, and run but not compared (in flight). */
  readonly compared: number;
  readonly agreed: number;
  readonly notCompared: number;
}

export interface CoverageReport {
  /** uAPI transitions of the machine (the universe) and those the path set covers. */
  readonly total: number;
  /** The path search was complete: the transitions it did not cover are unreachable. */
  readonly complete: boolean;
  readonly covered: number;
  /** Covered by a step that replayed with an allowed result. */
  readonly matched: number;
  /** Covered by a step that diverged. */
  readonly diverged: readonly string[];
  /** Covered only by steps not replayed (after a divergence or a fixture limit). */
  readonly notReplayed: readonly string[];
  /** 'Event→result' pairs of the paths, with what happened to them. */
  readonly results: Readonly<Record<string, 'matched' | 'diverged' | 'not replayed'>>;
}

export interface ConformOptions {
  readonly failAt?: { readonly step: number; readonly nth: number };
  readonly callTimeoutMs?: number;
  /** Every call must give the path's own prediction, not just a result the model allows. */
  readonly strict?: boolean;
  readonly onPath?: (done: number, total: number, last: PathReport) => void | Promise<void>;
  /** Passed to each path's replay (replay.ts ReplayOptions.mark), with the path. */
  readonly mark?: (path: ConformancePath, at: number | 'end') => Promise<void>;
  /** Called when the run restarts the target (a BUG or a deadlock left processes stuck). */
  readonly onRestart?: () => Promise<void>;
}

let runCounter = 0;

export async function runConformance(
  run: ConformRun,
  target: ReplayTarget,
  opts: ConformOptions = {},
): Promise<ConformReport> {
  const started = performance.now();
  const reports: PathReport[] = [];
  // Actor names are per target: a second run on the same target needs fresh ones.
  const runNo = runCounter++;
  for (const [i, path] of run.paths.entries()) {
    const n = run.numbers[i];
    const r = await replayPath(run.variant, run.adapter, path, target, {
      prefix: `r${runNo}p${n}`,
      uuids: Array.from({ length: run.adapter.uuidsPerPath }, (_, k) => uuidFor(n, k)),
      ...(opts.failAt && { failAt: opts.failAt }),
      ...(opts.callTimeoutMs && { callTimeoutMs: opts.callTimeoutMs }),
      ...(opts.strict && { strict: true }),
      ...(opts.mark && { mark: (at: number | 'end') => opts.mark!(path, at) }),
    });
    reports.push(r);
    await opts.onPath?.(i + 1, run.paths.length, r);
    // A BUG or a deadlock left processes stuck in the kernel: the next path needs a fresh VM.
    if (r.restartTarget && target.restart && i + 1 < run.paths.length) {
      await target.restart();
      await opts.onRestart?.();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const replayed = reports.flatMap((r) => r.steps);
  const steps = replayed.length;
  const calls = replayed.filter((s) => s.kind === 'call').length;
  const shimOps = reports.reduce(
    (n, r) => n + r.fixture.length + r.steps.reduce((m, s) => m + s.ops.length, 0),
    0,
  );
  return {
    model: run.variant.modelId,
    variant: run.variant.name,
    paths: reports,
    coverage: coverage(run, reports),
    facts: factsSummary(run, reports),
    steps,
    calls,
    seconds,
    stepsPerSecond: steps / Math.max(seconds, 1e-9),
    shimOpsPerSecond: shimOps / Math.max(seconds, 1e-9),
  };
}

function factsSummary(run: ConformRun, reports: readonly PathReport[]): FactsSummary {
  const hasFacts = (e: EventObject, actor: string) => {
    const m = run.adapter.map(e as any, actor, run.variant.name);
    return m.kind === 'call' && m.facts !== undefined;
  };
  const events = new Set<string>();
  let calls = 0;
  for (const p of run.paths)
    for (const s of p.steps)
      if (s.call && hasFacts(s.event, s.actor)) {
        calls++;
        events.add(s.event.type);
      }
  const withFacts = reports.flatMap((r) => r.steps.filter((s) => s.facts !== undefined));
  return {
    events: [...events].sort(),
    calls,
    compared: withFacts.filter((s) => s.facts?.observed !== undefined).length,
    agreed: withFacts.filter((s) => s.facts?.observed !== undefined && s.facts.ok).length,
    notCompared: withFacts.filter((s) => s.facts?.observed === undefined).length,
  };
}

/** Which uAPI transitions and (call, result) pairs each path step covers, on the model. */
export function stepCoverage(variant: ResolvedVariant, path: ConformancePath): string[][] {
  const engine: AnyEngine = chooseEngine(variant, 'auto').engine;
  const homes = homeStates(variant);
  let s = engine.initial();
  const keys: string[][] = path.steps.map(() => []);
  const lastCall = new Map<string, number>();
  const events: EventObject[] = [];
  path.steps.forEach((step, i) => {
    const e = step.event as EventObject;
    const next = engine.step(s, e);
    if (variant.calls.has(e.type)) {
      keys[i].push(...engine.transitionsOf(s, e));
      if (step.result !== undefined) keys[i].push(`${e.type}→${step.result}`);
      lastCall.set(step.actor, i);
    } else {
      // a result recorded when the call returns belongs to the call
      const done = completionKeys(variant, engine, homes, events, s, next, e);
      const at = lastCall.get(step.actor);
      if (at !== undefined) keys[at].push(...done);
    }
    events.push(e);
    s = next;
  });
  return keys;
}

/** With a complete search, the transitions no path covers are unreachable: say so, and the share of the reachable ones. */
function unreachableNote(unreachable: number, matched: number, reachable: number): string {
  const share = reachable ? ((100 * matched) / reachable).toFixed(1) : '100.0';
  return `; the other ${unreachable} ${unreachable === 1 ? 'is' : 'are'} unreachable (complete search): ${share}% of the reachable ones`;
}

function coverage(run: ConformRun, reports: readonly PathReport[]): CoverageReport {
  const state = new Map<string, 'matched' | 'diverged' | 'not replayed'>();
  const rank = { matched: 2, diverged: 1, 'not replayed': 0 } as const;
  const put = (k: string, v: 'matched' | 'diverged' | 'not replayed') => {
    const old = state.get(k);
    if (old === undefined || rank[v] > rank[old]) state.set(k, v);
  };
  for (const [i, path] of run.paths.entries()) {
    const r = reports[i];
    stepCoverage(run.variant, path).forEach((keys, j) => {
      const s = r.steps[j];
      const before = r.failedStep === undefined || j < r.failedStep;
      const v =
        r.status === 'diverge' && r.failedStep === j
          ? 'diverged'
          : s?.ok && s.kind === 'call' && before
            ? 'matched'
            : 'not replayed';
      for (const k of keys) put(k, v);
    });
  }
  const transitions = [...state].filter(([k]) => !k.includes('→'));
  const results = Object.fromEntries([...state].filter(([k]) => k.includes('→')).sort());
  return {
    total: run.file.coverage.transitions.total,
    complete: run.file.complete,
    covered: transitions.length,
    matched: transitions.filter(([, v]) => v === 'matched').length,
    diverged: transitions.filter(([, v]) => v === 'diverged').map(([k]) => k),
    notReplayed: transitions.filter(([, v]) => v === 'not replayed').map(([k]) => k),
    results,
  };
}

/** The command that replays one path alone. */
export function reproducer(
  report: ConformReport,
  pathId: string,
  pathsFile?: string,
  kernel?: string,
  /** The model as the user named it (an id or a model file). */
  model: string = report.model,
): string {
  return [
    'npx tsx cli/main.ts conform',
    model,
    `--variant ${report.variant}`,
    ...(pathsFile ? [`--paths ${pathsFile}`] : []),
    ...(kernel ? [`--kernel ${kernel}`] : []),
    `--path ${pathId}`,
  ].join(' ');
}

const show = (e: unknown) => JSON.stringify(e);
const firstLine = (text: string | undefined, re: RegExp) =>
  (text ?? '')
    .split('\n')
    .find((l) => re.test(l))
    ?.replace(/^\[[\s\d.]+\]\s*/, '') ?? '';

export function formatConformReport(
  report: ConformReport,
  how: { pathsFile?: string; kernel?: string; model?: string } = {},
): string {
  const c = report.coverage;
  const by = (s: string) => report.paths.filter((p) => p.status === s).length;
  const pct = (n: number) => (c.total ? ((100 * n) / c.total).toFixed(1) : '100.0');
  const bugs = by('kernel-bug');
  const lines = [
    `${report.model} / ${report.variant}: ${report.paths.length} paths: ${by('match')} match, ` +
      `${bugs ? `${bugs} kernel-bug (predicted), ` : ''}${by('diverge')} diverge, ` +
      `${by('unreplayable')} unreplayable, ${by('setup-error')} setup errors`,
    c.total === 0
      ? // a path file made from one trace (pathFromTrace) counts no machine total
        `  uAPI transitions: ${c.covered} covered by the path file, ${c.matched} replayed with an allowed result`
      : `  uAPI transitions: ${c.total} in the machine, ${c.covered} covered by the paths, ${c.matched} replayed with an allowed result (${pct(c.matched)}%)` +
        (c.complete && c.covered < c.total ? unreachableNote(c.total - c.covered, c.matched, c.covered) : ''),
    `  results: ${Object.entries(c.results)
      .map(([k, v]) => `${k}${v === 'matched' ? '' : ` (${v})`}`)
      .join(', ')}`,
    `  ${report.steps} steps (${report.calls} uAPI calls) in ${report.seconds.toFixed(1)} s: ${report.stepsPerSecond.toFixed(2)} steps/s, ${report.shimOpsPerSecond.toFixed(2)} shim ops/s`,
  ];
  const f = report.facts;
  if (f.calls > 0) {
    lines.push(
      `  facts besides the result (${f.events.join(', ')}): compared on ${f.compared} of the ${f.calls} such calls in the paths, ` +
        `${f.agreed} as the model predicts` +
        (f.compared > f.agreed ? `, ${f.compared - f.agreed} diverged` : '') +
        (f.notCompared ? `, ${f.notCompared} not compared (left in flight)` : '') +
        (f.calls > f.compared + f.notCompared
          ? `, ${f.calls - f.compared - f.notCompared} not replayed`
          : ''),
    );
  }
  if (c.notReplayed.length)
    lines.push('  covered but not replayed:', ...c.notReplayed.map((t) => `    ${t}`));
  const lockdep = report.paths.flatMap((p) =>
    p.steps.flatMap((s) =>
      (s.lockdep ?? []).map((t) => `    ${p.id} step ${s.index + 1} ${show(s.event)}: ${lockdepSummary(t)}`),
    ),
  );
  if (lockdep.length) lines.push('  lockdep reports (attached to the step that ran):', ...lockdep);
  for (const p of report.paths.filter((x) => x.status === 'kernel-bug' || x.restartTarget)) {
    const bugStep = p.steps.find((s) => s.observed === 'BUG');
    lines.push(
      `  ${p.id}: ${bugStep ? `BUG at step ${bugStep.index + 1}, as predicted: ${firstLine(bugStep.splat, /kernel BUG at|Oops/)}` : (p.reason ?? '')}; processes stuck in the kernel: teardown skipped, a fresh VM for the next path`,
    );
  }
  for (const p of report.paths.filter((x) => x.status !== 'match' && x.status !== 'kernel-bug')) {
    lines.push(
      '',
      `${p.status.toUpperCase()} ${p.id}${p.failedStep !== undefined ? ` at step ${p.failedStep + 1}` : ''}`,
    );
    if (p.reason) lines.push(`  ${p.reason}`);
    const s = p.failedStep !== undefined ? p.steps[p.failedStep] : undefined;
    if (s) {
      lines.push(
        `  step ${s.index + 1}: [${s.actor}] ${show(s.event)}`,
        `  predicted by the path: ${s.predicted ?? '-'}; allowed by the model: ${s.allowed?.join(' | ') ?? '-'}; observed: ${s.observed ?? '-'}`,
        ...s.ops.map((o) => `  shim: ${o.actor} ${o.op} ${show(o.args)} → ${o.status} ${o.errno}`),
      );
      if (s.splat) lines.push('  splat:', ...s.splat.split('\n').map((l) => `    ${l}`));
    }
    if (p.log?.length)
      lines.push('  kernel log (last lines of the path):', ...p.log.slice(-20).map((l) => `    ${l}`));
    lines.push(`  replay alone: ${reproducer(report, p.id, how.pathsFile, how.kernel, how.model)}`);
  }
  return lines.join('\n');
}

/** JUnit XML: one testsuite per run, one testcase per path. */
export function formatJunit(reports: readonly ConformReport[]): string {
  const esc = (s: string) =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const suites = reports.map((r) => {
    const failures = r.paths.filter((p) => p.status === 'diverge').length;
    const errors = r.paths.filter((p) => p.status === 'setup-error').length;
    const skipped = r.paths.filter((p) => p.status === 'unreplayable').length;
    const cases = r.paths.map((p) => {
      const body =
        p.status === 'match' || p.status === 'kernel-bug'
          ? p.reason || p.status === 'kernel-bug'
            ? `<system-out>${esc(p.reason ?? 'kernel BUG, as the model predicts')}</system-out>`
            : ''
          : p.status === 'diverge'
            ? `<failure message="${esc(p.reason ?? '')}">${esc((p.log ?? []).join('\n'))}</failure>`
            : p.status === 'setup-error'
              ? `<error message="${esc(p.reason ?? '')}"/>`
              : `<skipped message="${esc(p.reason ?? '')}"/>`;
      return `    <testcase classname="${esc(`${r.model}.${r.variant}`)}" name="${esc(p.id)}" time="${p.seconds.toFixed(3)}">${body}</testcase>`;
    });
    return [
      `  <testsuite name="${esc(`conform ${r.model}/${r.variant}`)}" tests="${r.paths.length}" failures="${failures}" errors="${errors}" skipped="${skipped}" time="${r.seconds.toFixed(3)}">`,
      ...cases,
      '  </testsuite>',
    ].join('\n');
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n${suites.join('\n')}\n</testsuites>\n`;
}
