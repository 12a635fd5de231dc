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

function countersOf(mirror: GcovMirror, inc: Increments): ObjectCounters[] {
  const out: ObjectCounters[] = [];
  for (const [object, m] of inc) {
    const img = mirror.image(object);
    if (!img) continue;
    const values = new Float64Array(img.slots.length);
    for (const [k, v] of m) values[k] = v;
    out.push({ object, words: img.words, slots: img.slots, values });
  }
  return out;
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

export async function runCoverage(opts: CoverageOptions): Promise<CoverageResult> {
  const { build, log } = opts;
  requireTools(['gcov', 'ctags']);
  const objectDir = build.coverage?.objectDir;
  if (!objectDir)
    throw new Error(`${build.bzImage} is not the coverage flavour (npm run kernel:build -- --coverage)`);
  const plans = coveragePlans().filter((p) => !opts.only || opts.only.includes(planName(p)));
  log(`generating the paths of ${plans.length} runs`);
  const loaded = await loadPlans(plans);
  const all = opts.only ? await loadPlans(coveragePlans()) : loaded;
  const plansDigests = planDigests(all);
  const adapters = adaptersDigest();
  const digest = replayDigest(plansDigests, adapters);

  log('booting the coverage kernel for the models’ replays');
  const mirror = new GcovMirror(objectDir);
  const target = await openTarget({
    kind: 'qemu',
    kernel: build.bzImage,
    allow: await unionAllowList(loaded),
    callTimeoutMs: 60_000,
  });
  let models: Awaited<ReturnType<typeof replayAll>>;
  try {
    models = await replayAll(loaded, target, new Snapshotter(target, mirror), log);
  } finally {
    await target.close();
  }
  log(`models: ${models.intervals.length} intervals in ${models.seconds.toFixed(0)} s`);

  let selftests: SourceHits = new Map();
  let selftestRun: Awaited<ReturnType<typeof runSelftestsForCoverage>> | undefined;
  const objects = mirror.objects();
  const gcovStarted = performance.now();
  if (opts.selftests !== false) {
    log('booting the coverage kernel for the iommufd selftests');
    selftestRun = await runSelftestsForCoverage(build);
    const prefix = `${objectDir.replace(/^\/+/, '')}/`;
    const counters: ObjectCounters[] = [];
    for (const [path, words] of selftestRun.gcda) {
      if (!path.startsWith(prefix)) continue;
      const object = path.slice(prefix.length, -'.gcda'.length);
      const slots = counterSlots(words, path);
      counters.push({ object, words, slots, values: readCounters(words, slots) });
    }
    selftests = gcovHits(build.dir, build.source.dir, counters);
    log(`selftests: ${selftestRun.seconds.toFixed(0)} s`);
  }
  const modelHits = gcovHits(build.dir, build.source.dir, countersOf(mirror, models.total));
  const files = profiledSources(build, objects);
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

  // per transition: the functions each call step's interval reached
  log('per transition: gcov over every step');
  const index = functionIndex(build.source.dir, files);
  const reach = new Map<string, Map<string, TransitionReach>>();
  const pathsOf = new Map(loaded.map((l) => [planName(l.plan), l]));
  const stepMaps = new Map<string, Map<number, string[]>>();
  for (const iv of models.intervals) {
    if (iv.kind !== 'step' || !iv.plan || !iv.path || iv.step === undefined) continue;
    const l = pathsOf.get(iv.plan) as LoadedPlan;
    const key = `${iv.plan}\0${iv.path}`;
    let steps = stepMaps.get(key);
    if (!steps) {
      const path = l.file.paths.find((p) => p.id === iv.path);
      steps = path ? stepTransitions(l.variant, path) : new Map();
      stepMaps.set(key, steps);
    }
    const hits = gcovHits(build.dir, build.source.dir, countersOf(mirror, iv.inc));
    const fns = [...hits].flatMap(([f, lines]) =>
      reachedFunctions(sourceFunctions(build.source.dir, f), lines).map((fn) => `${f}:${fn}`),
    );
    const events = new Set(
      (steps.get(iv.step) ?? []).map((t) => t.slice(t.indexOf('#') + 1).replace(/\[\d+\]$/, '')),
    );
    let m = reach.get(l.plan.model);
    if (!m) reach.set(l.plan.model, (m = new Map()));
    for (const e of events) {
      let r = m.get(e);
      if (!r) m.set(e, (r = { steps: 0, reached: new Set() }));
      r.steps++;
      for (const f of fns) r.reached.add(f);
    }
  }
  const measurable = (c: Citation) => files.includes(c.file);
  const protocols: ProtocolCheck[] = [];
  for (const model of Object.keys(ADAPTERS)) {
    const cites = await transitionCitations(join(MACHINES, `${model}.ts`), ADAPTERS[model].eventTypes, index);
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
  const gcovSeconds = (performance.now() - gcovStarted) / 1000 - (selftestRun?.seconds ?? 0);
  return {
    format: COVERAGE_FORMAT,
    date: new Date().toISOString().slice(0, 10),
    kernel: build.source.version,
    digest,
    plans: plansDigests,
    adapters,
    runs: models.reports.map((r, i) => summarise(r, planName(loaded[i].plan))),
    selftests: {
      passed: selftestRun?.results.reduce((n, r) => n + r.passed.length, 0) ?? 0,
      failed: selftestRun?.results.reduce((n, r) => n + r.failed.length, 0) ?? 0,
      skipped: selftestRun?.results.reduce((n, r) => n + r.skipped.length, 0) ?? 0,
    },
    seconds: { models: models.seconds, selftests: selftestRun?.seconds ?? 0, gcov: gcovSeconds },
    files: rows,
    focus: FOCUS_FILES.map((file) => {
      const row = rows.find((r) => r.file === file);
      return { file, ...(row ? functionGaps(row) : { selftestsOnly: [], modelsOnly: [], neither: [] }) };
    }),
    protocols,
  };
}
