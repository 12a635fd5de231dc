/**
 * The vfio-mc command line. Exit codes: one table for every subcommand
 * (exit-codes.ts), decided before any output is written. Every error is one
 * line `vfio-mc: error: ...`, with the trace that reached the state when the
 * model failed in one.
 */
import { readFileSync, writeFileSync as writeFileSyncRaw } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import bytes from 'bytes';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { registerExport } from './export.ts';
import {
  checkWritableDir,
  checkWritableFile,
  endQuietlyOnEpipe,
  print,
  stdoutClosed,
  toJson,
  violationJson,
  writeTrails,
} from './output.ts';
import { EXIT, formatExitTable, searchExit, searchScope } from '../explorer/exit-codes.ts';
import { unexplained } from '../explorer/coverage.ts';
import { createReferenceEngine } from '../explorer/engine-reference.ts';
import { pickEngine } from '../explorer/engine-choice.ts';
import { AUTO_PROBE_STATES, explore } from '../explorer/explore.ts';
import { DEFAULT_SAMPLE, proposeFootprints } from '../explorer/por.ts';
import { initModelDir } from './init.ts';
import { readJsonFile } from '../explorer/json-file.ts';
import {
  type Model,
  ModelError,
  ModelFunctionError,
  type Params,
  parseParamAssignments,
  type ResolvedVariant,
} from '../explorer/model.ts';
import { progressLine } from './progress.ts';
import { findModel, isModelPath, registeredModels } from '../explorer/registry.ts';
import { formatMermaidDocument } from '../explorer/report-mermaid.ts';
import { formatEvent, formatReport, formatViolation, type TextOptions } from '../explorer/report-text.ts';
import type { ExploreResult } from '../explorer/result.ts';
import { formatTable, outputWidth, wrapCell } from '../explorer/text-table.ts';
import { readCheckpoint, StoppedAtCheckpoint } from '../explorer/checkpoint.ts';
import { confirmTrail, parseTrail, recordedModelFile } from '../explorer/trail.ts';
import { formatVerdictTable, type VerdictRow, verdictRow } from './verdicts.ts';
import { parseReplay, walk } from '../explorer/walk.ts';
import { brokerLog, brokerTargetOf, faultExit, nodeOption, serveNode } from './distributed.ts';
import { budgetOption, cmdMerge, cmdSwarm, shardOption } from './swarm.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

type Opts = Record<string, any>;

function positiveInt(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got '${raw}'`);
    }
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (raw: string): number => (raw === '0' ? 0 : positiveInt(name)(raw));
}

function integer(name: string) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw)) throw new InvalidArgumentError(`${name} must be an integer, got '${raw}'`);
    return Number(raw);
  };
}

/** A size such as 2G, 512M, 1.5GB, 4096 (bytes), for --memory. */
function sizeOption(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(raw.trim());
  const n = m ? bytes.parse(`${m[1]}${m[2] ? `${m[2]}B` : 'B'}`) : null;
  if (n === null || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`--memory must be a size such as 2G, 512M or 1.5GB, got '${raw}'`);
  }
  return n;
}

function workersOption(raw: string): number | 'auto' {
  return raw === 'auto' ? 'auto' : positiveInt('--workers')(raw);
}

/** `--set a=1,b=2`, repeatable: merged into one assignment. */
function collectParams(raw: string, previous: Params | undefined): Params {
  let parsed: Params;
  try {
    parsed = parseParamAssignments(raw);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return { ...previous, ...parsed };
}

const textOptions = (o: Opts): TextOptions => ({ width: outputWidth(o.wide) });

/** The model and variant a command names, at the parameters `--set` gives. */
async function variantOf(target: string, o: Opts): Promise<{ model: Model; variant: ResolvedVariant }> {
  const model = await findModel(target);
  return { model, variant: model.variant(o.variant, o.set ?? {}) };
}

/** Where trails go: --trail-dir, else the working directory; none with --no-trails. Checked now. */
function trailDir(o: Opts, byDefault: boolean): string | undefined {
  if (o.trails === false) return undefined;
  if (o.trailDir === undefined && !byDefault) return undefined;
  const dir = resolve(o.trailDir ?? '.');
  checkWritableDir(dir, '--trail-dir');
  return dir;
}

/** The exit code of one search (exit-codes.ts), with the CI flags. */
function exitOf(r: ExploreResult, o: Opts): number {
  return searchExit(
    r,
    { requireCoverage: o.requireCoverage === true, requireComplete: o.requireComplete === true },
    () => unexplained(r.coverage).length > 0 || r.coverage.staleUnreachable.length > 0,
  );
}

/** --resume: the checkpoint, and its variant (loaded from the model file it names). */
async function resumeOf(target: string | undefined, o: Opts) {
  const checkpoint = readCheckpoint(o.resume);
  const model = await findModel(checkpoint.source.file);
  if (target !== undefined && (await findModel(target)).id !== model.id)
    throw new ModelError(`${o.resume} is a checkpoint of model '${model.id}', not '${target}'`);
  // --variant and --set, when given, must name the checkpoint's own: explore's checkResumable says which differs.
  const variant = model.variant(o.variant ?? checkpoint.source.variant, o.set ?? checkpoint.source.params);
  return { checkpoint, variant };
}

/**
 * Ctrl-C and SIGTERM: the search stops (the one-thread search within a
 * tenth of a second, the parallel one after its level) and the partial
 * report is printed, with the counterexamples found so far and their trails,
 * exit 130; with --checkpoint, the level is finished and written instead. A
 * second signal quits at once.
 */
function stopOnSignal(file: string | undefined): { requested: () => boolean; release: () => void } {
  let requested = false;
  const handler = (signal: NodeJS.Signals) => {
    if (requested) {
      process.stderr.write(`\nvfio-mc: ${signal}: stopped at once, no report\n`);
      process.exit(EXIT.interrupted);
    }
    requested = true;
    process.stderr.write(
      file === undefined
        ? `\nvfio-mc: ${signal}: stopping; the partial report follows (again to quit now)\n`
        : `\nvfio-mc: ${signal}: finishing this level, then writing ${file} (again to quit now)\n`,
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    requested: () => requested,
    release: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

async function cmdExplore(target: string | undefined, o: Opts): Promise<number> {
  if (target === undefined && o.resume === undefined)
    throw new ModelError('explore needs a model (or --resume FILE)');
  const resumed = o.resume ? await resumeOf(target, o) : undefined;
  const variant = resumed?.variant ?? (await variantOf(target as string, o)).variant;
  const broker = brokerTargetOf(o, variant);
  if (broker && broker.node > 0) return serveNode(variant, broker, o.memory);
  if (o.por === 'propose') return proposeDeclaration(variant, o);
  if (o.por !== undefined && o.por !== true)
    throw new ModelError(`--por takes no value or 'propose', got '${o.por}'`);
  if (o.view !== undefined && o.view !== true && o.view !== 'unchecked')
    throw new ModelError(`--view takes no value or 'unchecked', got '${o.view}'`);
  if (o.symmetry !== undefined && o.symmetry !== true && o.symmetry !== 'unchecked')
    throw new ModelError(`--symmetry takes no value or 'unchecked', got '${o.symmetry}'`);
  // `--mermaid -`: the diagrams on standard output, the text report on standard error.
  if (o.mermaid === '-' && o.json)
    throw new ModelError('--mermaid - and --json both print to standard output: give --mermaid a file');
  if (o.mermaid && o.mermaid !== '-') checkWritableFile(o.mermaid, '--mermaid');
  if (o.html) checkWritableFile(o.html, '--html');
  if (o.checkpoint) checkWritableFile(o.checkpoint, '--checkpoint');
  const trails = trailDir(o, true);
  const progress = progressLine(`${variant.modelId}/${variant.name}`, o.progress && !o.json);
  const signals = stopOnSignal(o.checkpoint);
  let result: ExploreResult;
  try {
    result = await explore(variant, {
      depth: o.depth,
      maxStates: o.maxStates,
      engine: o.engine,
      check: o.check,
      workers: o.workers,
      ...(o.memory !== undefined && { memoryLimit: o.memory }),
      ...(o.checkpoint && {
        checkpoint: {
          file: o.checkpoint,
          everySeconds: o.checkpointEvery * 60,
          stopRequested: signals.requested,
        },
      }),
      ...(resumed && { resume: resumed.checkpoint }),
      ...(broker && { broker: { ...broker, log: brokerLog } }),
      symmetry: o.symmetry === 'unchecked' ? 'unchecked' : o.symmetry === true,
      view: o.view === 'unchecked' ? 'unchecked' : o.view === true,
      por: o.por === true,
      shortest: o.shortest === true,
      onProgress: (p) => progress.update(p),
      // With --checkpoint a signal stops at the checkpoint (StoppedAtCheckpoint) instead.
      ...(!o.checkpoint && { stopRequested: signals.requested }),
    });
  } catch (e) {
    progress.stop();
    const fault = faultExit(e, o.json);
    if (fault !== undefined) return fault;
    if (!(e instanceof StoppedAtCheckpoint)) throw e;
    process.stderr.write(`vfio-mc: ${e.message}\nresume it: vfio-mc explore --resume ${e.file}\n`);
    return EXIT.interrupted;
  } finally {
    progress.stop();
    signals.release();
  }
  const interrupted = result.cutBy === 'interrupted';
  const compared =
    o.compareReductions && !interrupted ? await compareReductions(variant, result, o) : undefined;
  // Reductions that changed a verdict: the unreduced search is the result, the difference the exit code.
  if (compared && !compared.comparison.sameVerdicts) result = compared.unreduced;
  const code = compared && !compared.comparison.sameVerdicts ? EXIT.reductionsDiffer : exitOf(result, o);
  if (trails) {
    const file = target !== undefined && isModelPath(target) ? target : variant.source?.file;
    result = { ...result, violations: writeTrails(result.violations, variant, trails, file) };
  }
  const actors = createReferenceEngine(variant.machine).actors;
  const comparison = compared?.comparison;
  const report = o.json
    ? JSON.stringify({ ...toJson(result), ...(comparison && { comparison }) }, null, 2)
    : formatReport(result, actors, textOptions(o)) +
      (comparison ? `\n\n${formatComparison(comparison)}` : '');
  if (o.mermaid === '-') {
    print(formatMermaidDocument(result, actors));
    process.stderr.write(`${report}\n`);
  } else {
    if (o.mermaid) writeFileSyncChecked(o.mermaid, formatMermaidDocument(result, actors));
    print(report);
  }
  if (o.html) await writeHtml(o.html, [{ result, actors }]);
  return code;
}

/** `--por=propose`: footprints learnt on random walks, printed as a declaration to review and paste. */
function proposeDeclaration(variant: ResolvedVariant, o: Opts): number {
  const engine = pickEngine(variant, o.engine ?? 'auto').engine;
  const proposal = proposeFootprints(variant, engine, { ...DEFAULT_SAMPLE, walks: 200 });
  print(
    o.json
      ? JSON.stringify(proposal, null, 2)
      : `// ${variant.modelId} / ${variant.name}: footprints seen on 200 random walks of ${DEFAULT_SAMPLE.depth} steps.\n` +
          `// Review before use: a step the walks never took is missing. Paste as the model's \`footprints\`.\n` +
          `footprints: ${JSON.stringify(proposal, null, 2)}`,
  );
  return EXIT.ok;
}

/**
 * --compare-reductions: the same search without reductions, and with each
 * combination of the reductions the model declares (view, symmetry, POR): state counts, times
 * and whether the verdicts agree.
 */
async function compareReductions(variant: ResolvedVariant, reduced: ExploreResult, o: Opts) {
  if (reduced.reductions.length === 0)
    throw new ModelError('--compare-reductions needs a reduction (--view, --symmetry, --por)');
  const bounds = { depth: o.depth, maxStates: o.maxStates, check: o.check };
  const full = await explore(variant, { ...bounds, workers: o.workers });
  const verdicts = (r: ExploreResult) =>
    Object.fromEntries(r.properties.filter((p) => p.status !== 'not checked').map((p) => [p.name, p.status]));
  const a = verdicts(full);
  const declared = ['por', 'symmetry', 'view'].filter(
    (r) =>
      (r !== 'symmetry' || variant.symmetry) &&
      (r !== 'por' || variant.footprints) &&
      (r !== 'view' || variant.view),
  );
  // Every non-empty combination, the single reductions first.
  const combos = declared
    .reduce<string[][]>((acc, r) => [...acc, ...acc.map((c) => [...c, r])], [[]])
    .slice(1)
    .sort((x, y) => x.length - y.length);
  const rows = [];
  // 'symmetry (unchecked)' is the symmetry reduction in the mode the user asked for: each
  // combination runs every reduction in that mode, so an unsound unchecked one shows up here.
  const asked = [...reduced.reductions]
    .map((r) => r.replace(/ \(unchecked\)$/, ''))
    .sort()
    .join('+');
  const mode = (flag: boolean | string | undefined) => (flag === 'unchecked' ? 'unchecked' : true);
  for (const c of combos) {
    const same = c.join('+') === asked;
    const r = same
      ? reduced
      : await explore(variant, {
          ...bounds,
          workers: c.includes('por') ? 1 : o.workers,
          symmetry: c.includes('symmetry') && mode(o.symmetry),
          view: c.includes('view') && mode(o.view),
          por: c.includes('por'),
        });
    const b = verdicts(r);
    const differ = Object.keys(b)
      .filter((k) => a[k] !== b[k])
      .map((property) => ({ property, unreduced: a[property] ?? 'not judged', reduced: b[property] }));
    rows.push({
      reductions: c,
      states: r.states,
      factor: full.states / r.states,
      seconds: r.seconds,
      sameVerdicts: differ.length === 0,
      differ,
    });
  }
  const askedRow = rows.find((x) => x.reductions.join('+') === asked)!;
  return {
    unreduced: full,
    comparison: {
      reductions: reduced.reductions,
      states: { unreduced: full.states, reduced: askedRow.states, factor: askedRow.factor },
      seconds: { unreduced: full.seconds, reduced: askedRow.seconds },
      sameVerdicts: rows.every((x) => x.sameVerdicts),
      rows,
    },
  };
}

function formatComparison(c: Awaited<ReturnType<typeof compareReductions>>['comparison']): string {
  const n = (x: number) => x.toLocaleString('en');
  return [
    `reductions: ${n(c.states.unreduced)} states without, ${c.seconds.unreduced.toFixed(1)} s`,
    ...c.rows.flatMap((r) => [
      `  ${r.reductions.join(' + ').padEnd(16)} ${n(r.states).padStart(10)} states  ${r.factor.toFixed(1).padStart(6)}x fewer  ` +
        `${r.seconds.toFixed(1).padStart(6)} s${r.sameVerdicts ? '' : '  VERDICTS DIFFER'}`,
      ...r.differ.map(
        (d) =>
          `    ${d.property}: ${d.unreduced} without reductions, ${d.reduced} with ${r.reductions.join(' + ')}`,
      ),
    ]),
    c.sameVerdicts
      ? '  the same verdict for every property judged'
      : `  VERDICTS DIFFER: the report above is the unreduced search's; a reduction is unsound on this model (exit ${EXIT.reductionsDiffer})`,
  ].join('\n');
}

/** The self-contained HTML report (view/report/), loaded only when asked for. */
async function writeHtml(file: string, runs: import('../view/report/html-report.tsx').ReportRun[]) {
  const { htmlReport } = await import('../view/report/html-report.tsx');
  writeFileSyncChecked(file, htmlReport({ command: `vfio-mc ${commandLine}`, version: VERSION, runs }));
}

function writeFileSyncChecked(path: string, text: string): void {
  // The path was checked before the search; a failure now is the file system's, said plainly.
  try {
    writeFileSyncRaw(path, text);
  } catch (e) {
    // /dev/stdout into a reader that went away (`--mermaid /dev/stdout | head -3`): as for print().
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return stdoutClosed();
    throw new ModelError(`cannot write ${path}: ${(e as Error).message}`);
  }
}

async function cmdList(o: Opts): Promise<number> {
  const models = await registeredModels();
  const rows = models.map(describeModel);
  if (o.json) {
    print(JSON.stringify(rows, null, 2));
    return EXIT.ok;
  }
  const width = outputWidth(o.wide);
  const out: string[] = [];
  for (const m of rows) {
    out.push(...wrapCell(`${m.id}: ${m.description}`, width));
    for (const [name, p] of Object.entries(m.params)) {
      out.push(
        ...wrapCell(`  --set ${name}=N  (default ${p.default}, ${p.min}..${p.max}) ${p.description}`, width),
      );
    }
    if (m.reductions.length) out.push(...wrapCell(`  reductions: ${m.reductions.join(' ')}`, width));
    const common = m.variants.reduce<string[]>(
      (acc, v) => acc.filter((x) => v.properties.some((p) => p.name === x)),
      m.variants[0]?.properties.map((p) => p.name) ?? [],
    );
    const kinds = new Map(m.variants.flatMap((v) => v.properties.map((p) => [p.name, p.kind] as const)));
    const props = common.map((n) => [kinds.get(n) ?? '', n]);
    out.push(
      ...formatTable(
        ['  kind', 'property'],
        props.map(([k, n]) => [`  ${k}`, n]),
        width,
      ),
    );
    out.push(
      ...formatTable(
        ['  variant', 'description'],
        m.variants.map((v) => {
          const extra = v.properties
            .filter((p) => !common.includes(p.name))
            .map((p) => `${p.name} (${p.kind})`);
          const name = `  ${v.name}${v.name === m.defaultVariant ? ' *' : ''}`;
          return [name, `${v.description}${extra.length ? ` [also: ${extra.join(', ')}]` : ''}`];
        }),
        width,
        { min: [12, 30] },
      ),
    );
    out.push('');
  }
  out.push('* the default variant; --variant NAME picks another');
  print(out.join('\n'));
  return EXIT.ok;
}

function describeModel(m: Model) {
  const first = m.variant();
  return {
    id: m.id,
    description: m.description,
    params: m.params,
    // The reductions the default variant declares (a variant may declare others).
    reductions: [
      ...(first.view ? ['--view'] : []),
      ...(first.symmetry ? ['--symmetry'] : []),
      ...(first.footprints ? ['--por'] : []),
    ],
    defaultVariant: m.defaultVariant,
    variants: m.variantNames.map((name) => {
      const v = m.variant(name);
      return {
        name,
        description: v.description,
        properties: [
          ...Object.keys(v.invariants).map((p) => ({ name: p, kind: 'invariant' })),
          ...Object.entries(v.properties).map(([p, t]) => ({ name: p, kind: t.kind as string })),
          { name: 'deadlock', kind: 'deadlock' },
        ],
      };
    }),
  };
}

/** `--models a,b,path/to/model.ts`: registered ids or model files; an unknown id is an error. */
async function selectModels(list: string | undefined): Promise<{ model: Model; file?: string }[]> {
  const registered = await registeredModels();
  if (list === undefined) return registered.map((model) => ({ model }));
  const wanted = list.split(',').filter((x) => x !== '');
  if (wanted.length === 0) throw new ModelError('--models names no model');
  const out: { model: Model; file?: string }[] = [];
  for (const w of wanted) {
    if (isModelPath(w)) out.push({ model: await findModel(w), file: w });
    else {
      const model = registered.find((m) => m.id === w);
      if (!model)
        throw new ModelError(
          `--models: unknown model '${w}' (registered: ${registered.map((m) => m.id).join(', ')})`,
        );
      out.push({ model });
    }
  }
  return out;
}

/** The parameters each model takes from a `--set` given to several: every name must belong to one of them. */
function paramsFor(models: readonly Model[], given: Params): (m: Model) => Params {
  for (const name of Object.keys(given)) {
    if (!models.some((m) => name in m.params)) {
      throw new ModelError(`--set ${name}: no selected model has a parameter '${name}'`);
    }
  }
  return (m) => Object.fromEntries(Object.entries(given).filter(([k]) => k in m.params));
}

async function cmdVerdicts(o: Opts): Promise<number> {
  const selected = await selectModels(o.models);
  const params = paramsFor(
    selected.map((s) => s.model),
    o.set ?? {},
  );
  const trails = trailDir(o, false);
  if (o.html) checkWritableFile(o.html, '--html');
  const jobs = selected.flatMap(({ model, file }) => model.variantNames.map((v) => ({ model, file, v })));
  const started = performance.now();
  const rows: VerdictRow[] = [];
  for (const [k, { model, file, v }] of jobs.entries()) {
    const progress = progressLine(
      `[${k + 1}/${jobs.length}] ${model.id}/${v}`,
      o.progress && !o.json,
      started,
    );
    let row: VerdictRow;
    try {
      row = await verdictRow(model, v, params(model), {
        onProgress: (p) => progress.update(p),
        check: o.check,
        workers: o.workers,
        view: o.view === true,
      });
    } finally {
      progress.stop();
    }
    if (trails) {
      const violations = writeTrails(row.result.violations, model.variant(v, params(model)), trails, file);
      row = { ...row, result: { ...row.result, violations } };
    }
    rows.push(row);
  }
  // An unexpected row first; else a search that a resource cut short has no verdict to compare.
  const code = !rows.every((r) => r.asExpected)
    ? EXIT.violation
    : rows.some((r) => searchScope(r.result) === 'cut')
      ? EXIT.incomplete
      : EXIT.ok;
  if (o.html) {
    const actors = jobs.map(
      ({ model, v }) => createReferenceEngine(model.variant(v, params(model)).machine).actors,
    );
    await writeHtml(
      o.html,
      rows.map((r, k) => ({ result: r.result, actors: actors[k], asExpected: r.asExpected, why: r.why })),
    );
  }
  if (o.json) {
    print(
      JSON.stringify(
        rows.map((r) => ({ ...toJson(r.result), asExpected: r.asExpected, why: r.why })),
        null,
        2,
      ),
    );
  } else {
    print(formatVerdictTable(rows, outputWidth(o.wide)));
  }
  return code;
}

async function cmdReplay(first: string, second: string | undefined, o: Opts): Promise<number> {
  const file = second ?? first;
  const t = parseTrail(await readJsonFile(file), file);
  const target = second !== undefined ? first : (recordedModelFile(t) ?? t.model);
  if (target === undefined)
    throw new ModelError(`${file}: names no model; give it: vfio-mc replay <model> ${file}`);
  const model = await findModel(target);
  const variant = model.variant(o.variant ?? t.variant, { ...t.params, ...o.set });
  const v = confirmTrail(variant, t);
  const replayedOn =
    t.variant !== undefined && variant.name !== t.variant ? ` (recorded on variant '${t.variant}')` : '';
  const verdict = v.mismatches.length > 0 ? 'does-not-replay' : v.findings.length > 0 ? 'violation' : 'clean';
  if (o.json) {
    print(
      JSON.stringify(
        {
          model: model.id,
          variant: variant.name,
          params: variant.params,
          verdict,
          findings: v.findings,
          results: { compared: v.compared, mismatches: v.mismatches },
          trace: violationJson(v.violation).trace,
        },
        null,
        2,
      ),
    );
  } else {
    const text = textOptions(o);
    print(
      `${model.id} / ${variant.name}${replayedOn}: ${t.steps.length} steps replayed on xstate's transition()`,
    );
    print(
      formatViolation(
        { ...v.violation, trail: undefined },
        createReferenceEngine(variant.machine).actors,
        text,
      )
        .split('\n')
        .slice(1)
        .join('\n'),
    );
    for (const m of v.mismatches)
      print(
        `result differs at step ${m.step} (${m.event}): the trail says ${m.recorded}, the model gives ${m.model}`,
      );
    if (v.compared === 0) print('the trail records no results to compare');
    else if (v.mismatches.length === 0) print(`all ${v.compared} recorded results match the model`);
    for (const f of v.findings) {
      const when = f.step === 0 ? 'in the initial state' : `after step ${f.step}`;
      print(
        `confirmed: ${f.kind === 'invariant' ? `invariant '${f.property}'` : f.kind} ${f.kind === 'invariant' ? 'violated ' : ''}${when}${f.detail ? ` (${f.detail})` : ''}`,
      );
    }
    if (verdict === 'clean')
      print('replays cleanly: every invariant holds after every step, and no deadlock at the end');
    if (verdict === 'does-not-replay')
      print('the trail does not replay on this model: its recorded results differ');
  }
  return verdict === 'does-not-replay' ? EXIT.usage : verdict === 'violation' ? EXIT.violation : EXIT.ok;
}

async function cmdWalk(target: string, o: Opts): Promise<number> {
  const { variant } = await variantOf(target, o);
  const trails = trailDir(o, true);
  const r = walk(variant, {
    runs: o.runs,
    depth: o.depth,
    seed: o.seed,
    check: o.check,
    ...(o.replay && { replay: parseReplay(o.replay) }),
  });
  const violation =
    r.violation && trails
      ? writeTrails([r.violation], variant, trails, isModelPath(target) ? target : undefined)[0]
      : r.violation;
  const actors = createReferenceEngine(variant.machine).actors;
  if (o.json) {
    print(JSON.stringify({ ...r, violation: violation && violationJson(violation) }, null, 2));
    return violation ? EXIT.violation : EXIT.ok;
  }
  const ran = `${r.runs} random walk${r.runs === 1 ? '' : 's'} of up to ${o.depth} steps, ${r.steps.toLocaleString('en')} steps in all`;
  if (!violation) {
    print(`${variant.modelId} / ${variant.name}: ${ran}, no violation (seed ${r.seed})`);
    return EXIT.ok;
  }
  print(
    `${variant.modelId} / ${variant.name}: ${ran}; ${violation.kind} '${violation.property}' after ${violation.trace.length} steps ` +
      `(first found after ${r.firstFoundLength} steps, shrunk ${r.shrinks} times)`,
  );
  print(formatViolation(violation, actors, textOptions(o)).split('\n').slice(1).join('\n'));
  print(`seed ${r.seed}, path ${r.path}`);
  const set = Object.keys(o.set ?? {}).length
    ? ` --set ${Object.entries(o.set)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`
    : '';
  print(
    `reproduce: vfio-mc walk ${target} --variant ${variant.name}${set} --depth ${o.depth} --replay ${r.seed}:${r.path}`,
  );
  return EXIT.violation;
}

async function cmdPaths(target: string, o: Opts): Promise<number> {
  const { generatePaths, pathFromTrace, formatCoverage } = await import('../conformance/paths.ts');
  const { variant } = await variantOf(target, o);
  if (o.out) checkWritableFile(o.out, '--out');
  let file: ReturnType<typeof generatePaths>;
  if (o.fromTrace) {
    const t = parseTrail(await readJsonFile(o.fromTrace), o.fromTrace);
    file = pathFromTrace(
      variant,
      t.steps.map((s) => s.event),
      `${variant.modelId}/${variant.name}/trace`,
    );
  } else {
    file = generatePaths(variant, { depth: o.depth, maxStates: o.maxStates });
  }
  const text = JSON.stringify(file, null, 2);
  if (o.out) writeFileSyncChecked(o.out, `${text}\n`);
  print(o.json ? text : `${formatCoverage(file)}${o.out ? `\n  written to ${o.out}` : ''}`);
  return EXIT.ok;
}

function failNthOption(raw: string): { step: number; nth: number } {
  const m = /^(\d+):(\d+)$/.exec(raw);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
    throw new InvalidArgumentError(
      `--fail-nth must be STEP:N (1-based path step, nth allocation), got '${raw}'`,
    );
  return { step: Number(m[1]) - 1, nth: Number(m[2]) };
}

async function cmdConform(target: string, o: Opts): Promise<number> {
  const conform = await import('../conformance/conform.ts');
  const { openTarget } = await import('../conformance/target.ts');
  // A path file records the parameters its paths were chosen at: replay at those unless --set says otherwise.
  const recorded = o.paths ? ((await readJsonFile(o.paths)) as { params?: Params })?.params : undefined;
  const { model, variant } = await variantOf(target, { ...o, set: o.set ?? recorded });
  if (o.junit) checkWritableFile(o.junit, '--junit');
  if (o.kernel && o.target !== 'qemu') throw new ModelError('--kernel needs --target qemu');
  const { existsSync } = await import('node:fs');
  if (o.kernel && !existsSync(o.kernel)) throw new ModelError(`kernel image ${o.kernel} does not exist`);
  const run = conform.planRun(model, variant.name, await conform.loadPaths(variant, o.paths), o.path);
  const showProgress = o.progress && !o.json && process.stderr.isTTY;
  if (showProgress) process.stderr.write(`booting the ${o.target} target...\n`);
  let t: Awaited<ReturnType<typeof openTarget>>;
  try {
    t = await openTarget({
      kind: o.target,
      allow: conform.allowList(run),
      ...(o.kernel && { kernel: o.kernel }),
      callTimeoutMs: 60_000,
    });
  } catch (e) {
    throw new ModelError(`cannot open the ${o.target} target: ${(e as Error).message}`);
  }
  let report: Awaited<ReturnType<typeof conform.runConformance>>;
  try {
    report = await conform.runConformance(run, t, {
      ...(o.failNth && { failAt: o.failNth }),
      ...(o.strict && { strict: true }),
      onPath: (done, total, last) => {
        if (showProgress) process.stderr.write(`\r[${done}/${total}] ${last.id}: ${last.status}        `);
      },
    });
  } finally {
    if (showProgress) process.stderr.write('\n');
    await t.close();
  }
  if (o.junit) writeFileSyncChecked(o.junit, conform.formatJunit([report]));
  print(
    o.json
      ? JSON.stringify({ ...report, bootMs: t.bootMs }, null, 2)
      : `${conform.formatConformReport(report, { pathsFile: o.paths, kernel: o.kernel, model: target })}\n  target boot: ${(t.bootMs / 1000).toFixed(1)} s`,
  );
  if (report.paths.some((p) => p.status === 'diverge')) return EXIT.violation;
  return report.paths.some((p) => p.status === 'setup-error') ? EXIT.usage : EXIT.ok;
}

async function cmdInit(dir: string): Promise<number> {
  const written = initModelDir(dir);
  print(`wrote ${written.join(', ')}`);
  print(`run it:  vfio-mc explore ${join(dir, 'model.ts')}`);
  return EXIT.ok;
}

/** Options most commands share. */
const variantOption = () => new Option('--variant <name>', 'design variant (default: the model’s default)');
const setOption = () =>
  new Option('--set <name=value,...>', 'model parameters, e.g. --set dmas=3 (see `vfio-mc list`)').argParser(
    collectParams,
  );
const wideOption = () => new Option('--wide', 'do not fit the output to the terminal width');
const checkOption = () =>
  new Option('--no-check', 'turn off checking mode (in-place changes, non-determinism, non-plain data)');
const trailOptions = (c: Command) =>
  c
    .option(
      '--trail-dir <dir>',
      'where counterexample trail files are written (default: the working directory)',
    )
    .option('--no-trails', 'do not write trail files');

export function buildProgram(): Command {
  const program = new Command('vfio-mc')
    .description('Model checker for the Linux VFIO and iommufd user API')
    .version(VERSION, '--version', 'print the version')
    .option('--debug', 'show stack traces on errors')
    .exitOverride()
    .addHelpText('afterAll', `\n${formatExitTable()}\n`)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`vfio-mc: ${s.replace(/^error: /, 'error: ')}`),
    });
  program
    .command('list')
    .description('registered models: parameters, variants (with descriptions) and properties (with kinds)')
    .option('--json', 'machine-readable output')
    .addOption(wideOption())
    .action(async (o) => setExit(await cmdList(o)));
  trailOptions(
    program
      .command('explore')
      .description('explore every interleaving of a model within the bounds')
      .argument('[model]', 'a registered model id, or a path to a model file (optional with --resume)')
      .addOption(variantOption())
      .addOption(setOption())
      .option('--depth <n>', 'maximum depth (events from the initial state)', positiveInt('--depth'))
      .option('--max-states <n>', 'maximum number of distinct states', positiveInt('--max-states'))
      .addOption(
        new Option('--engine <kind>', 'successor engine')
          .choices(['auto', 'compiled', 'reference'])
          .default('auto'),
      )
      .option('--json', 'print one JSON object and nothing else')
      .option(
        '--mermaid <file>',
        'write the counterexamples as Mermaid sequence diagrams (Markdown); -: standard output (the report then goes to standard error)',
      )
      .option('--html <file>', 'write a self-contained HTML report (opens offline)')
      .option(
        '--workers <n|auto>',
        `worker threads, each owning a share of the states; auto: one thread for a search of up to ${AUTO_PROBE_STATES.toLocaleString('en')} states, else the machine's ${availableParallelism()} cores`,
        workersOption,
        'auto',
      )
      .option(
        '--memory <size>',
        'bound the search: the frontier spills to disk, then the search stops (2G, 512M)',
        sizeOption,
      )
      .option('--checkpoint <file>', 'write the search state there every few minutes and on Ctrl-C/SIGTERM')
      .option(
        '--checkpoint-every <minutes>',
        'minutes between checkpoints (0: after every level)',
        nonNegativeInt('--checkpoint-every'),
        5,
      )
      .option(
        '--resume <file>',
        'continue a search from its checkpoint (same model, variant, workers, bounds)',
      )
      .option('--broker <url>', 'run distributed over this Redis server (redis://HOST:PORT), with --node')
      .option('--node <i/n>', 'with --broker: this process is node i of n; node 0 coordinates', nodeOption)
      .option('--run <name>', 'with --broker: the run’s name (default: model, variant, parameters, n)')
      .option(
        '--symmetry [unchecked]',
        "store one state of each orbit under the model's interchangeable ids, the renamings proved on every stored state; " +
          '--symmetry=unchecked does not prove them, and every verdict says it rests on them',
      )
      .option(
        '--view [unchecked]',
        "store one state per view: the model's projection forgetting what can no longer matter, checked on every step; " +
          '--view=unchecked runs a view function unchecked, and every verdict says it rests on it',
      )
      .option(
        '--por [propose]',
        "partial-order reduction by the model's declared footprints; --por=propose prints a declaration learnt on random walks",
      )
      .option('--shortest', 'with --por: search the unreduced graph again for shortest counterexamples')
      .option(
        '--compare-reductions',
        'also explore without reductions and with each one the model declares, and print the state counts',
      ),
  )
    .addOption(checkOption())
    .option(
      '--require-coverage',
      'exit 3 when a transition never fired and the model does not list it as unreachable',
    )
    .option('--require-complete', 'exit 4 also when a depth bound you set cut the search off')
    .addOption(wideOption())
    .option('--no-progress', 'no progress line on the terminal')
    .action(async (target, o) => setExit(await cmdExplore(target, o)));
  program
    .command('verdicts')
    .description('explore every registered model and variant at default bounds; compare with expectations')
    .option('--models <ids>', 'comma-separated model ids or model files')
    .addOption(setOption())
    .option('--trail-dir <dir>', 'write every counterexample as a trail file there')
    .option('--html <file>', 'write a self-contained HTML report (opens offline)')
    .option('--workers <n|auto>', 'worker threads for each search (as for explore)', workersOption, 'auto')
    .option(
      '--view',
      'with --view for the variants whose model declares a view (state counts are then of views)',
    )
    .addOption(checkOption())
    .option('--json', 'machine-readable output')
    .addOption(wideOption())
    .option('--no-progress', 'no progress line on the terminal')
    .action(async (o) => setExit(await cmdVerdicts(o)));
  trailOptions(
    program
      .command('walk')
      .description(
        'random deep walks beyond the BFS bound (fast-check), shrunk to a short trace on a violation',
      )
      .argument('<model>', 'a registered model id, or a path to a model file')
      .addOption(variantOption())
      .addOption(setOption())
      .option('--runs <n>', 'number of walks', positiveInt('--runs'), 100)
      .option('--depth <n>', 'maximum steps a walk', positiveInt('--depth'), 1000)
      .option('--seed <n>', 'fast-check seed', integer('--seed'))
      .option('--replay <seed:path>', 'reproduce a failing walk exactly, as printed'),
  )
    .addOption(checkOption())
    .option('--json', 'machine-readable output')
    .addOption(wideOption())
    .action(async (target, o) => setExit(await cmdWalk(target, o)));
  program
    .command('swarm')
    .description('one shard of a swarm: seeded random walks and random-order bounded DFS, a JSON report')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .addOption(variantOption())
    .addOption(setOption())
    .requiredOption('--shard <i/n>', 'this is shard i of n (0-based)', shardOption)
    .option('--seed <n>', 'the swarm’s seed; each shard mixes in its index', integer('--seed'), 1)
    .option('--budget <limit>', 'time (1s, 2m) or states visited (10000states); default 10s', budgetOption, {
      seconds: 10,
    })
    .option('--depth <n>', 'the longest walk, the deepest DFS', positiveInt('--depth'), 200)
    .option('--out <file>', 'write the report there (default: standard output)')
    .addOption(checkOption())
    .action(async (target, o) => setExit(await cmdSwarm(target, (await variantOf(target, o)).variant, o)));
  program
    .command('merge')
    .description('combine swarm shard reports: coverage, first and shortest violations, totals')
    .argument('<reports...>', 'the shards’ JSON reports')
    .option('--trail-dir <dir>', 'write the shortest trail of each violation there')
    .option('--json', 'machine-readable output')
    .action(async (files, o) => setExit(await cmdMerge(files, o)));
  program
    .command('paths')
    .description('conformance paths covering every uAPI transition and predicted errno within the bounds')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .addOption(variantOption())
    .addOption(setOption())
    .option('--depth <n>', 'maximum depth', positiveInt('--depth'))
    .option('--max-states <n>', 'maximum number of distinct states', positiveInt('--max-states'))
    .option('--from-trace <file>', 'make a one-path file from a trail (or explore/walk --json output)')
    .option('--out <file>', 'write the path file (JSON)')
    .option('--json', 'print the path file instead of the coverage summary')
    .action(async (target, o) => setExit(await cmdPaths(target, o)));
  program
    .command('conform')
    .description('replay conformance paths on a real kernel and compare every result with the model')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .addOption(variantOption())
    .addOption(setOption())
    .addOption(
      new Option('--target <kind>', 'where the kernel runs').choices(['qemu', 'local']).default('qemu'),
    )
    .option('--kernel <bzImage>', 'kernel image for the qemu target (default: the cached build)')
    .option('--paths <file>', 'a path file (paths --out); default: the coverage set at the model bounds')
    .option('--path <id>', 'replay only this path')
    .option('--strict', 'every call must give the path’s own prediction (a counterexample’s interleaving)')
    .option(
      '--fail-nth <step:n>',
      'inject a fault: fail-nth n on the call at path step (1-based)',
      failNthOption,
    )
    .option('--junit <file>', 'write a JUnit XML report')
    .option('--json', 'print one JSON object and nothing else')
    .option('--no-progress', 'no progress line on the terminal')
    .action(async (target, o) => setExit(await cmdConform(target, o)));
  program
    .command('coverage')
    .description(
      'which kernel code the models reach: their replays and the iommufd selftests on a gcov kernel',
    )
    .option('--only <runs>', 'only these replay runs (model/variant, comma-separated); no summary')
    .option('--no-selftests', 'skip the selftests VM')
    .option('--html <file>', 'write the HTML report (source lines coloured)')
    .option('--out <file>', 'write the whole result as JSON')
    .option('--summary <file>', 'write the summary that is committed (conformance/coverage/summary.json)')
    .option('--raw <file>', 'also write what the VMs gave (to analyse again with --from-raw)')
    .option('--from-raw <file>', 'analyse a --raw file again, without booting')
    .option('--json', 'print one JSON object and nothing else')
    .option('--no-progress', 'no progress on standard error')
    .action(async (o) => setExit(await (await import('./coverage.ts')).cmdCoverage(o)));
  program
    .command('replay')
    .description(
      'replay a trail on xstate’s transition(): invariants after every step, deadlock at the end, recorded results compared',
    )
    .argument('<model-or-trail>', 'the trail file; or a model id / model file, then the trail')
    .argument('[trail]', 'the trail file, when a model is named first')
    .addOption(new Option('--variant <name>', 'replay on this variant instead of the one the trail records'))
    .addOption(setOption())
    .option('--json', 'machine-readable output')
    .addOption(wideOption())
    .action(async (first, second, o) => setExit(await cmdReplay(first, second, o)));
  program
    .command('init')
    .description('write a starting model, its spec page and a README into a directory')
    .argument('<dir>', 'the directory (created if missing)')
    .action(async (dir) => setExit(await cmdInit(dir)));
  program
    .command('serve')
    .description('explore a model interactively in the browser (view/README.md)')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .addOption(variantOption())
    .addOption(new Option('--set <name=value,...>', 'model parameters, e.g. --set dmas=3'))
    .option('--port <n>', 'port (0: any free one)', integer('--port'), 7317)
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--expose', 'allow --host to be an address other than loopback')
    .action(async (target, o) =>
      setExit(await (await import('../view/server/serve.ts')).serveCommand(target, o)),
    );
  registerExport(program, setExit);
  return program;
}

let exitCode: number = EXIT.ok;
/** The arguments of the running command, as the HTML report records them. */
let commandLine = '';
const setExit = (c: number) => {
  exitCode = c;
};

/** The error as the user sees it: one line, then the trace and the model's source line when known. */
export function formatError(e: unknown, debug: boolean): string {
  const lines: string[] = [];
  if (e instanceof ModelError) {
    lines.push(`vfio-mc: error: ${e.message}`);
    const where = e instanceof ModelFunctionError ? sourceOf(e.cause) : undefined;
    if (where) lines.push(`  at ${where}`);
    if (e.trace !== undefined) {
      lines.push(e.trace.length === 0 ? '  in the initial state' : '  in the state reached by:');
      e.trace.forEach((ev, i) => lines.push(`    ${i + 1}. ${formatEvent(ev)}`));
    }
    if (debug) lines.push(String((e instanceof ModelFunctionError && (e.cause as Error)?.stack) || e.stack));
    return lines.join('\n');
  }
  const err = e as Error;
  lines.push(`vfio-mc: error: internal error (a bug in vfio-mc; --debug shows where): ${err?.message ?? e}`);
  if (debug) lines.push(String(err?.stack));
  return lines.join('\n');
}

/** The first stack frame in the model's own code (not vfio-mc's explorer, not a dependency). */
function sourceOf(cause: unknown): string | undefined {
  const stack = (cause as Error)?.stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(([^()]+:\d+:\d+)\)$|at ([^ ()]+:\d+:\d+)$/.exec(line.trim());
    const where = (m?.[1] ?? m?.[2])?.replace(/^file:\/\//, '');
    if (!where || where.startsWith('node:') || where.includes('/node_modules/')) continue;
    if (where.startsWith(join(ROOT, 'explorer'))) continue;
    return where;
  }
  return undefined;
}

export async function main(argv: readonly string[]): Promise<number> {
  endQuietlyOnEpipe();
  exitCode = EXIT.ok;
  commandLine = argv.join(' ');
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is a usage error.
      return e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
        ? EXIT.ok
        : EXIT.usage;
    }
    process.stderr.write(`${formatError(e, argv.includes('--debug'))}\n`);
    return EXIT.usage;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
