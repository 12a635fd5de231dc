/**
 * The models' half of the coverage run: every conformance path of every variant an adapter
 * replays on 7.3.4 (the `-fixed` designs need the patched kernel and are left out), and the
 * U6 deadlock traces `npm run conform:all` replays `--strict`, all on one VM of the coverage
 * kernel, with a gcov snapshot before each call step, before each teardown and after it. The
 * counter increments between two snapshots are the interval's: a path's fixture, one call step
 * (with the internal steps the kernel takes inside that call), a teardown, a boot.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { EventObject } from 'xstate';
import { chooseEngine } from '../../explorer/engine-choice.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import type { ReplayTarget } from '../adapters/adapter.ts';
import { conformanceDir } from '../cache.ts';
import { ADAPTERS, allowList, type ConformReport, loadPaths, planRun, runConformance } from '../conform.ts';
import type { ConformancePath, PathFile } from '../paths.ts';
import { addInto, type Increments, type Snapshotter } from './snapshots.ts';

export interface ReplayPlan {
  readonly model: string;
  readonly variant: string;
  /** A stored path file (a counterexample) instead of the generated coverage set. */
  readonly pathsFile?: string;
  readonly strict?: boolean;
}

const TRACES = join(conformanceDir, '..', 'test', 'conformance', 'traces');

/**
 * Every replayable variant (not the patched kernel's `-fixed` designs), then the U6 traces and
 * the paths added for what the coverage found no path reaching (spec/conformance.md).
 */
export function coveragePlans(): ReplayPlan[] {
  const plans: ReplayPlan[] = [];
  for (const a of Object.values(ADAPTERS))
    for (const v of a.variants) if (!v.endsWith('-fixed')) plans.push({ model: a.model, variant: v });
  plans.push(
    {
      model: 'container',
      variant: 'current-hotplug',
      pathsFile: join(TRACES, 'u6-hotplug-deadlock.paths.json'),
      strict: true,
    },
    {
      model: 'device-close',
      variant: 'two-unmappers',
      pathsFile: join(TRACES, 'u6-two-unmappers-deadlock.paths.json'),
      strict: true,
    },
    // IOAS_UNMAP of an area an access has pinned: the notification (DEV:iommufd_access_notify_unmap)
    // is an internal step, so the coverage set (calls and results) has no path through it
    {
      model: 'ioas',
      variant: 'access-unmap',
      pathsFile: join(TRACES, 'ioas-access-unmap-notify.paths.json'),
    },
  );
  return plans;
}

export const planName = (p: ReplayPlan) =>
  `${p.model}/${p.variant}${p.pathsFile ? ` (${p.strict ? 'U6 trace, --strict' : basename(p.pathsFile, '.paths.json')})` : ''}`;

export interface LoadedPlan {
  readonly plan: ReplayPlan;
  readonly variant: ResolvedVariant;
  readonly file: PathFile;
}

export async function loadPlans(plans: readonly ReplayPlan[]): Promise<LoadedPlan[]> {
  const out: LoadedPlan[] = [];
  for (const plan of plans) {
    const model = await findModel(plan.model);
    const variant = model.variant(plan.variant);
    out.push({ plan, variant, file: await loadPaths(variant, plan.pathsFile) });
  }
  return out;
}

/** The paths a plan replays (events and predicted results), as a digest. */
export function pathsDigest(file: PathFile): string {
  return createHash('sha256').update(JSON.stringify(file.paths)).digest('hex').slice(0, 16);
}

const MACHINES = join(conformanceDir, '..', 'machines');

/** A machines/ module and the machines/ modules it imports, transitively. */
function machineClosure(file: string): string[] {
  const files = [file];
  for (let i = 0; i < files.length; i++) {
    const text = readFileSync(files[i], 'utf8');
    for (const m of text.matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)) {
      const f = resolve(dirname(files[i]), m[1]);
      if (f.startsWith(MACHINES) && !files.includes(f)) files.push(f);
    }
  }
  return files.sort();
}

/**
 * What a plan's paths are made from, cheap to hash: its machine and the machines/ modules it
 * imports, its adapter, the path generator and the stored path file. When this is unchanged
 * the paths are; when it changed, the paths are made again and compared (a comment changes
 * the inputs, not the paths).
 */
export function planInputs(plan: ReplayPlan): string {
  const h = createHash('sha256');
  const files = [
    ...machineClosure(join(MACHINES, `${plan.model}.ts`)),
    join(conformanceDir, 'adapters', `${plan.model}.ts`),
    join(conformanceDir, 'paths.ts'),
    ...(plan.pathsFile ? [plan.pathsFile] : []),
  ];
  for (const f of files) h.update(relative(conformanceDir, f)).update('\0').update(readFileSync(f));
  return h.digest('hex').slice(0, 16);
}

/** The adapters' sources: a change to one is a change to what a replay does. */
export function adaptersDigest(): string {
  const h = createHash('sha256');
  const dir = join(conformanceDir, 'adapters');
  for (const f of readdirSync(dir).sort())
    h.update(f)
      .update('\0')
      .update(readFileSync(join(dir, f)));
  return h.digest('hex').slice(0, 16);
}

export interface PlanDigest {
  readonly plan: string;
  readonly inputs: string;
  readonly paths: string;
}

export const planDigests = (loaded: readonly LoadedPlan[]): PlanDigest[] =>
  loaded.map((l) => ({ plan: planName(l.plan), inputs: planInputs(l.plan), paths: pathsDigest(l.file) }));

/** One digest of the whole replay: every plan's paths and the adapters. */
export function replayDigest(plans: readonly PlanDigest[], adapters: string): string {
  const h = createHash('sha256');
  for (const p of plans) h.update(`${p.plan}\0${p.paths}\0`);
  return h.update(adapters).digest('hex').slice(0, 16);
}

/** Where an interval's kernel work came from. */
export type IntervalKind = 'boot' | 'fixture' | 'step' | 'teardown';

export interface Interval {
  readonly kind: IntervalKind;
  readonly plan?: string;
  readonly path?: string;
  /** The call step (index in the path), for kind 'step'. */
  readonly step?: number;
  /** For a step: whether its call was made (an adapter may refuse it as unreplayable first). */
  ran?: boolean;
  readonly inc: Increments;
}

export interface ModelRunResult {
  readonly reports: ConformReport[];
  readonly intervals: Interval[];
  /** Every interval but the boots: the models' total. */
  readonly total: Increments;
  readonly seconds: number;
}

export async function replayAll(
  loaded: readonly LoadedPlan[],
  target: ReplayTarget & { restart(): Promise<void> },
  snap: Snapshotter,
  progress: (msg: string) => void = () => {},
): Promise<ModelRunResult> {
  const started = performance.now();
  const intervals: Interval[] = [];
  const total: Increments = new Map();
  let where: Omit<Interval, 'inc'> = { kind: 'boot' };
  const take = async (next: Omit<Interval, 'inc'>) => {
    const inc = await snap.snapshot();
    intervals.push({ ...where, inc });
    if (where.kind !== 'boot') addInto(total, inc);
    where = next;
  };
  const restarted = async () => {
    snap.mirror.zero();
    where = { kind: 'boot' };
    await take({ kind: 'boot' });
  };
  await take({ kind: 'boot' });
  const reports: ConformReport[] = [];
  for (const [k, l] of loaded.entries()) {
    const name = planName(l.plan);
    const model = await findModel(l.plan.model);
    const run = planRun(model, l.plan.variant, l.file);
    let current: string | undefined;
    const report = await runConformance(run, target, {
      ...(l.plan.strict && { strict: true }),
      mark: async (path, at) => {
        if (current !== path.id) {
          current = path.id;
          where = { kind: 'fixture', plan: name, path: path.id };
        }
        await take(
          at === 'end'
            ? { kind: 'teardown', plan: name, path: path.id }
            : { kind: 'step', plan: name, path: path.id, step: at },
        );
      },
      onPath: async (done, n, last) => {
        const made = new Set(last.steps.filter((st) => st.observed !== undefined).map((st) => st.index));
        for (const iv of intervals)
          if (iv.kind === 'step' && iv.plan === name && iv.path === last.id && iv.ran === undefined)
            iv.ran = made.has(iv.step ?? -1);
        await take({ kind: 'fixture', plan: name });
        progress(`[${k + 1}/${loaded.length}] ${name}: path ${done}/${n} ${last.id} ${last.status}`);
      },
      onRestart: restarted,
    });
    reports.push(report);
    // The run leaves nothing stuck for the next one: a deadlock or BUG at its last path restarts here.
    if (report.paths.at(-1)?.restartTarget) {
      await target.restart();
      await restarted();
    }
  }
  return { reports, intervals, total, seconds: (performance.now() - started) / 1000 };
}

/** The allow-list for every plan at once (one VM for the whole run). */
export async function unionAllowList(loaded: readonly LoadedPlan[]): Promise<string[]> {
  const all = new Set<string>();
  for (const l of loaded) {
    const model = await findModel(l.plan.model);
    for (const a of allowList(planRun(model, l.plan.variant, l.file))) all.add(a);
  }
  return [...all].sort();
}

/**
 * The machine transitions each call step stands for: its own, and those of the internal steps
 * the kernel takes inside that call (the actor's steps up to its next call), by step index.
 */
export function stepTransitions(variant: ResolvedVariant, path: ConformancePath): Map<number, string[]> {
  const engine = chooseEngine(variant, 'auto').engine;
  let s = engine.initial();
  const out = new Map<number, string[]>();
  const lastCall = new Map<string, number>();
  path.steps.forEach((step, i) => {
    const e = step.event as EventObject;
    const ids = engine.transitionsOf(s, e);
    if (step.call) {
      lastCall.set(step.actor, i);
      out.set(i, [...ids]);
    } else {
      const at = lastCall.get(step.actor);
      if (at !== undefined) out.get(at)?.push(...ids);
    }
    s = engine.step(s, e);
  });
  return out;
}
