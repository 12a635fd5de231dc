/**
 * `vfio-mc coverage`: which kernel code the models stand for. Replays every conformance path
 * of every replayable variant (replays.ts) on the coverage kernel (kernel/coverage.ts), runs the
 * kernel's iommufd selftests on it in a second VM (selftests.ts), and reports per file and per
 * function the lines and branches each reached (report.ts), per transition the functions it
 * reached and the citation check (transitions.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ConformReport } from '../conform.ts';
import type { KernelBuild } from '../kernel/build.ts';
import { requireTools } from '../run.ts';
import { openTarget } from '../target.ts';
import { ADAPTERS } from '../conform.ts';
import { type Citation, type FunctionIndex, specCitations, transitionCitations } from './citations.ts';
import { counterSlots, readCounters } from './gcda.ts';
import { gcovHits, type ObjectCounters, reachedFunctions, type SourceHits, sourceFunctions } from './gcov.ts';
import {
  adaptersDigest,
  coveragePlans,
  type Interval,
  type LoadedPlan,
  loadPlans,
  planDigests,
  type PlanDigest,
  planName,
  replayAll,
  replayDigest,
  stepTransitions,
  unionAllowList,
} from './replays.ts';
import { type FileRow, FOCUS_FILES, fileRows, functionGaps } from './report.ts';
import { runSelftestsForCoverage } from './selftests.ts';
import { GcovMirror, type Increments, Snapshotter } from './snapshots.ts';
import { checkProtocol, type ProtocolCheck, type TransitionReach } from './transitions.ts';

export const COVERAGE_FORMAT = 'vfio-mc/coverage@1';

export interface RunSummary {
  readonly plan: string;
  readonly paths: number;
  readonly match: number;
  readonly diverge: number;
  readonly unreplayable: number;
  readonly setupError: number;
  readonly steps: number;
}

export interface CoverageResult {
  readonly format: typeof COVERAGE_FORMAT;
  readonly date: string;
  readonly kernel: string;
  /** replays.ts replayDigest: the paths and adapters the run replayed. */
  readonly digest: string;
  /** Per plan: the hash of what its paths are made from and of the paths (the staleness test). */
  readonly plans: readonly PlanDigest[];
  readonly adapters: string;
  readonly runs: readonly RunSummary[];
  readonly selftests: { readonly passed: number; readonly failed: number; readonly skipped: number };
  readonly seconds: { readonly models: number; readonly selftests: number; readonly gcov: number };
  readonly files: readonly FileRow[];
  readonly focus: readonly ({ readonly file: string } & ReturnType<typeof functionGaps>)[];
  readonly protocols: readonly ProtocolCheck[];
}

const MACHINES = join(import.meta.dirname, '..', '..', 'machines');
const SPEC = join(import.meta.dirname, '..', '..', 'spec');

/** The C files of the profiled objects, relative to the tree. */
function profiledSources(build: KernelBuild, objects: readonly string[]): string[] {
  return objects.map((o) => `${o}.c`).filter((f) => existsSync(join(build.source.dir, f)));
}

/** Every function of the profiled source files, by name → files. */
export function functionIndex(sourceDir: string, files: readonly string[]): FunctionIndex {
  const index = new Map<string, string[]>();
  for (const f of files)
    for (const fn of sourceFunctions(sourceDir, f)) index.set(fn.name, [...(index.get(fn.name) ?? []), f]);
  return index;
}

const summarise = (r: ConformReport, plan: string): RunSummary => {
  const by = (s: string) => r.paths.filter((p) => p.status === s).length;
  return {
    plan,
    paths: r.paths.length,
    match: by('match') + by('kernel-bug'),
    diverge: by('diverge'),
    unreplayable: by('unreplayable'),
    setupError: by('setup-error'),
    steps: r.steps,
  };
};

export interface CoverageOptions {
  readonly build: KernelBuild;
  readonly log: (msg: string) => void;
  /** Only these plans (planName), for a quick look; the summary is then not the whole. */
  readonly only?: readonly string[];
  readonly selftests?: boolean;
}

type Sparse = Record<string, [number, number][]>;

/** What the VMs gave, before gcov: enough to analyse again without booting (--raw, --from-raw). */
export interface RawCoverage {
  readonly format: 'vfio-mc/coverage-raw@1';
  readonly kernel: string;
  readonly plans: readonly PlanDigest[];
  readonly adapters: string;
  readonly only?: readonly string[];
  readonly runs: readonly RunSummary[];
  /** Each object's .gcda words (its structure; counter values are not used). */
  readonly images: Record<string, number[]>;
  readonly intervals: readonly (Omit<Interval, 'inc'> & { inc: Sparse })[];
  readonly total: Sparse;
  readonly selftests?: {
    readonly passed: number;
    readonly failed: number;
    readonly skipped: number;
    /** Object → counter values at the end of the tests. */
    readonly counters: Record<string, number[]>;
  };
  readonly seconds: { readonly models: number; readonly selftests: number };
}

const toSparse = (inc: Increments): Sparse =>
  Object.fromEntries([...inc].map(([o, m]) => [o, [...m].map(([k, v]) => [k, v] as [number, number])]));
const fromSparse = (s: Sparse): Increments => new Map(Object.entries(s).map(([o, kv]) => [o, new Map(kv)]));

/** Boots the coverage kernel twice: the models' replays with a snapshot per step, then the selftests. */
export async function collectCoverage(opts: CoverageOptions): Promise<RawCoverage> {
  const { build, log } = opts;
  const objectDir = build.coverage?.objectDir;
  if (!objectDir)
    throw new Error(`${build.bzImage} is not the coverage flavour (npm run kernel:build -- --coverage)`);
  const plans = coveragePlans().filter((p) => !opts.only || opts.only.includes(planName(p)));
  log(`generating the paths of ${plans.length} runs`);
  const loaded = await loadPlans(plans);
  const all = opts.only ? await loadPlans(coveragePlans()) : loaded;

  log('booting the coverage kernel for the models’ replays');
  const mirror = new GcovMirror(objectDir);
  const target = await openTarget({
    kind: 'qemu',
    kernel: build.bzImage,
    allow: await unionAllowList(loaded),
    callTimeoutMs: 60_000,
    // TCG on a shared machine: a boot has taken over a minute at load 15
    bootTimeoutMs: 180_000,
  });
  let models: Awaited<ReturnType<typeof replayAll>>;
  try {
    models = await replayAll(loaded, target, new Snapshotter(target, mirror), log);
  } finally {
    await target.close();
  }
  log(`models: ${models.intervals.length} intervals in ${models.seconds.toFixed(0)} s`);

  let selftests: RawCoverage['selftests'];
  let selftestSeconds = 0;
  if (opts.selftests !== false) {
    log('booting the coverage kernel for the iommufd selftests');
    const run = await runSelftestsForCoverage(build);
    selftestSeconds = run.seconds;
    const prefix = `${objectDir.replace(/^\/+/, '')}/`;
    const counters: Record<string, number[]> = {};
    for (const [path, words] of run.gcda) {
      if (!path.startsWith(prefix)) continue;
      counters[path.slice(prefix.length, -'.gcda'.length)] = [
        ...readCounters(words, counterSlots(words, path)),
      ];
    }
    const sum = (k: 'passed' | 'failed' | 'skipped') => run.results.reduce((n, r) => n + r[k].length, 0);
    selftests = { passed: sum('passed'), failed: sum('failed'), skipped: sum('skipped'), counters };
    log(`selftests: ${run.seconds.toFixed(0)} s`);
  }
  return {
    format: 'vfio-mc/coverage-raw@1',
    kernel: build.source.version,
    plans: planDigests(all),
    adapters: adaptersDigest(),
    ...(opts.only && { only: opts.only }),
    runs: models.reports.map((r, i) => summarise(r, planName(loaded[i].plan))),
    images: Object.fromEntries(mirror.objects().map((o) => [o, [...(mirror.image(o)?.words ?? [])]])),
    intervals: models.intervals.map((iv) => ({ ...iv, inc: toSparse(iv.inc) })),
    total: toSparse(models.total),
    ...(selftests && { selftests }),
    seconds: { models: models.seconds, selftests: selftestSeconds },
  };
}

/** gcov over the totals and over every step; the per-file table, the gaps and the citation check. */
export async function analyseCoverage(
  raw: RawCoverage,
  build: KernelBuild,
  log: (msg: string) => void,
): Promise<CoverageResult> {
  requireTools(['gcov', 'ctags']);
  const started = performance.now();
  const images = new Map(
    Object.entries(raw.images).map(([o, w]) => {
      const words = Uint32Array.from(w);
      return [o, { words, slots: counterSlots(words, o) }];
    }),
  );
  const countersOf = (inc: Increments): ObjectCounters[] =>
    [...inc].flatMap(([object, m]) => {
      const img = images.get(object);
      if (!img) return [];
      const values = new Float64Array(img.slots.length);
      for (const [k, v] of m) values[k] = v;
      return [{ object, words: img.words, slots: img.slots, values }];
    });
  const selftests: SourceHits = raw.selftests
    ? gcovHits(
        build.dir,
        build.source.dir,
        Object.entries(raw.selftests.counters).flatMap(([object, values]) => {
          const img = images.get(object);
          return img
            ? [{ object, words: img.words, slots: img.slots, values: Float64Array.from(values) }]
            : [];
        }),
      )
    : new Map();
  const modelHits = gcovHits(build.dir, build.source.dir, countersOf(fromSparse(raw.total)));
  const files = profiledSources(build, [...images.keys()].sort());
  const instrumented = (f: string) =>
    [...new Set([...(modelHits.get(f)?.keys() ?? []), ...(selftests.get(f)?.keys() ?? [])])].sort(
      (a, b) => a - b,
    );
  const rows = fileRows(
    files,
    modelHits,
    selftests,
    (f) => sourceFunctions(build.source.dir, f),
    instrumented,
  );

  // per call: the functions each call step's interval reached (the call and the internal
  // steps the kernel takes inside it are one interval, so they are one unit of the check)
  log('per transition: gcov over every step');
  const plans = coveragePlans().filter((p) => !raw.only || raw.only.includes(planName(p)));
  const loaded = await loadPlans(plans);
  const now = planDigests(loaded);
  const changed = now.filter((p) => raw.plans.find((q) => q.plan === p.plan)?.paths !== p.paths);
  if (changed.length)
    throw new Error(
      `the paths changed since the run (${changed.map((p) => p.plan).join(', ')}): run the coverage again`,
    );
  if (adaptersDigest() !== raw.adapters)
    throw new Error('the adapters changed since the run: run the coverage again');
  // the paths are the run's: record what they are made from now (a comment may have changed)
  const plansNow = raw.only ? raw.plans : now;
  const index = functionIndex(build.source.dir, files);
  const reach = new Map<string, Map<string, TransitionReach>>();
  const units = new Map<string, Map<string, Set<string>>>();
  const pathsOf = new Map(loaded.map((l) => [planName(l.plan), l]));
  const stepMaps = new Map<string, Map<number, string[]>>();
  for (const iv of raw.intervals) {
    if (iv.kind !== 'step' || !iv.plan || !iv.path || iv.step === undefined || iv.ran === false) continue;
    const l = pathsOf.get(iv.plan) as LoadedPlan;
    const path = l.file.paths.find((p) => p.id === iv.path);
    if (!path) continue;
    const key = `${iv.plan}\0${iv.path}`;
    let steps = stepMaps.get(key);
    if (!steps) stepMaps.set(key, (steps = stepTransitions(l.variant, path)));
    const hits = gcovHits(build.dir, build.source.dir, countersOf(fromSparse(iv.inc)));
    const fns = [...hits].flatMap(([f, lines]) =>
      reachedFunctions(sourceFunctions(build.source.dir, f), lines).map((fn) => `${f}:${fn}`),
    );
    const call = path.steps[iv.step].event.type;
    const events = (steps.get(iv.step) ?? []).map((t) => t.slice(t.indexOf('#') + 1).replace(/\[\d+\]$/, ''));
    const m = reach.get(l.plan.model) ?? new Map<string, TransitionReach>();
    reach.set(l.plan.model, m);
    const u = units.get(l.plan.model) ?? new Map<string, Set<string>>();
    units.set(l.plan.model, u);
    const r = m.get(call) ?? { steps: 0, reached: new Set<string>() };
    m.set(call, r);
    r.steps++;
    for (const f of fns) r.reached.add(f);
    const evs = u.get(call) ?? new Set<string>([call]);
    u.set(call, evs);
    for (const e of events) evs.add(e);
  }
  const measurable = (c: Citation) => files.includes(c.file);
  const protocols: ProtocolCheck[] = [];
  for (const model of Object.keys(ADAPTERS)) {
    const own = await transitionCitations(join(MACHINES, `${model}.ts`), ADAPTERS[model].eventTypes, index);
    const u = units.get(model) ?? new Map<string, Set<string>>();
    const inUnits = new Set([...u.values()].flatMap((s) => [...s]));
    // a call cites what its own handler and the internal steps it takes cite
    const cites = new Map<string, Citation[]>();
    for (const [call, evs] of u)
      cites.set(
        call,
        [...evs].flatMap((e) => own.get(e) ?? []),
      );
    for (const [e, cs] of own) if (!inUnits.has(e) && !cites.has(e)) cites.set(e, cs);
    protocols.push(
      checkProtocol(
        model,
        specCitations(join(SPEC, `${model}.md`), index),
        cites,
        reach.get(model) ?? new Map(),
        measurable,
      ),
    );
  }
  const digest = replayDigest(plansNow, raw.adapters);
  return {
    format: COVERAGE_FORMAT,
    date: new Date().toISOString().slice(0, 10),
    kernel: raw.kernel,
    digest,
    plans: plansNow,
    adapters: raw.adapters,
    runs: raw.runs,
    selftests: {
      passed: raw.selftests?.passed ?? 0,
      failed: raw.selftests?.failed ?? 0,
      skipped: raw.selftests?.skipped ?? 0,
    },
    seconds: { ...raw.seconds, gcov: (performance.now() - started) / 1000 },
    files: rows,
    focus: FOCUS_FILES.map((file) => {
      const row = rows.find((r) => r.file === file);
      return {
        file,
        ...(row
          ? functionGaps(row)
          : { selftestsOnly: [], modelsOnly: [], neither: [], modelsOnlyLines: [] }),
      };
    }),
    protocols,
  };
}
