/**
 * The vfio-mc command line. Exit codes: 0 every property holds within the
 * bounds, 1 a violation (or an unexpected verdict), 2 a usage or model error.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { EventObject } from 'xstate';
import { registerExport } from './cli-export.ts';
import { createReferenceEngine } from './engine-reference.ts';
import { explore } from './explore.ts';
import { readJsonFile } from './json-file.ts';
import { ModelError } from './model.ts';
import { progressLine } from './progress.ts';
import { findModel, registeredModels } from './registry.ts';
import { formatMermaidDocument } from './report-mermaid.ts';
import { formatReport, formatStepLabel, formatSwimLanes } from './report-text.ts';
import type { ExploreResult } from './result.ts';
import { replay } from './trace.ts';
import { formatVerdictTable, type VerdictRow, verdictRow } from './verdicts.ts';
import { parseReplay, walk } from './walk.ts';

const EXIT = { ok: 0, violation: 1, usage: 2 } as const;

function positiveInt(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got '${raw}'`);
    }
    return n;
  };
}

/** The JSON shape promised to scripts: stable field names, nothing printed besides it. */
export function toJson(r: ExploreResult) {
  return {
    model: r.model,
    variant: r.variant,
    complete: r.complete,
    states: r.states,
    transitions: r.transitions,
    depth: r.depth,
    seconds: r.seconds,
    statesPerSecond: r.statesPerSecond,
    peakMemoryMB: r.peakMemoryMB,
    collisionProbability: r.collisionProbability,
    engine: r.engine,
    bounds: r.bounds,
    ...(r.cutBy && { cutBy: r.cutBy }),
    properties: r.properties,
    violations: r.violations.map((v) => ({
      property: v.property,
      kind: v.kind,
      ...(v.cycleStart !== undefined && { cycleStart: v.cycleStart }),
      trace: v.trace.map((s) => ({
        actor: s.actor,
        event: s.event,
        state: s.state,
        ...(s.call && { call: true }),
        ...(s.result !== undefined && { result: s.result }),
      })),
    })),
  };
}

const print = (s: string) => process.stdout.write(`${s}\n`);

async function cmdExplore(target: string, o: Record<string, any>): Promise<number> {
  const model = await findModel(target);
  const variant = model.variant(o.variant);
  const progress = progressLine(`${model.id}/${variant.name}`, o.progress && !o.json);
  let result: ExploreResult;
  try {
    result = await explore(variant, {
      depth: o.depth,
      maxStates: o.maxStates,
      engine: o.engine,
      onProgress: (p) => progress.update(p),
    });
  } finally {
    progress.stop();
  }
  const actors = createReferenceEngine(variant.machine).actors;
  if (o.mermaid) writeFileSync(o.mermaid, formatMermaidDocument(result, actors));
  print(o.json ? JSON.stringify(toJson(result), null, 2) : formatReport(result, actors));
  return result.violations.length > 0 ? EXIT.violation : EXIT.ok;
}

async function cmdList(o: Record<string, any>): Promise<number> {
  const models = await registeredModels();
  const rows = models.map((m) => ({
    id: m.id,
    description: m.description,
    variants: m.variantNames.map((name) => {
      const v = m.variant(name);
      return { name, invariants: Object.keys(v.invariants), properties: Object.keys(v.properties) };
    }),
  }));
  if (o.json) {
    print(JSON.stringify(rows, null, 2));
    return EXIT.ok;
  }
  for (const m of rows) {
    print(`${m.id}: ${m.description}`);
    for (const v of m.variants) {
      const props = [...v.invariants, ...v.properties, 'deadlock'].join(', ');
      print(`  --variant ${v.name}: ${props}`);
    }
  }
  return EXIT.ok;
}

async function cmdVerdicts(o: Record<string, any>): Promise<number> {
  const wanted: string[] | undefined = o.models?.split(',');
  const models = (await registeredModels()).filter((m) => !wanted || wanted.includes(m.id));
  const rows: VerdictRow[] = [];
  for (const m of models) {
    for (const v of m.variantNames) {
      const progress = progressLine(`${m.id}/${v}`, o.progress && !o.json);
      try {
        rows.push(await verdictRow(m, v));
      } finally {
        progress.stop();
      }
    }
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
    print(formatVerdictTable(rows));
  }
  return rows.every((r) => r.asExpected) ? EXIT.ok : EXIT.violation;
}

/** Accepts a bare array of events, a trace, or the --json output of explore (first violation). */
function eventsFromFile(data: any, file: string): EventObject[] {
  const list = Array.isArray(data) ? data : (data?.trace ?? data?.violations?.[0]?.trace);
  if (!Array.isArray(list))
    throw new ModelError(`${file}: expected an array of events, a trace, or explore --json output`);
  return list.map((x: any, i: number) => {
    const e = x?.event ?? x;
    if (typeof e?.type !== 'string') throw new ModelError(`${file}: step ${i + 1} has no event type`);
    return e as EventObject;
  });
}

async function cmdReplay(target: string, file: string, o: Record<string, any>): Promise<number> {
  const model = await findModel(target);
  const variant = model.variant(o.variant);
  const r = replay(variant, eventsFromFile(await readJsonFile(file), file));
  if (o.json) print(JSON.stringify(r.steps, null, 2));
  else for (const [i, s] of r.steps.entries()) print(`${i + 1}. [${s.actor}] ${formatStepLabel(s)}`);
  const last = r.snapshots[r.snapshots.length - 1];
  const broken = Object.entries(variant.invariants).filter(([, holds]) => !holds(last));
  if (!o.json)
    print(
      broken.length
        ? `violated at the end: ${broken.map(([n]) => n).join(', ')}`
        : 'every invariant holds at the end',
    );
  return broken.length ? EXIT.violation : EXIT.ok;
}

async function cmdWalk(target: string, o: Record<string, any>): Promise<number> {
  const model = await findModel(target);
  const variant = model.variant(o.variant);
  const r = walk(variant, {
    runs: o.runs,
    depth: o.depth,
    seed: o.seed,
    ...(o.replay && { replay: parseReplay(o.replay) }),
  });
  const actors = createReferenceEngine(variant.machine).actors;
  if (o.json) {
    print(
      JSON.stringify(
        { ...r, violation: r.violation && toJson({ violations: [r.violation] } as any).violations[0] },
        null,
        2,
      ),
    );
  } else if (!r.violation) {
    print(
      `${model.id} / ${variant.name}: ${r.runs} random walks of up to ${o.depth} steps, no violation (seed ${r.seed})`,
    );
  } else {
    const v = r.violation;
    print(
      `${model.id} / ${variant.name}: ${v.kind} '${v.property}' after ${v.trace.length} steps ` +
        `(first found after ${r.firstFoundLength} steps, shrunk ${r.shrinks} times)`,
    );
    print(formatSwimLanes(v, actors));
    print(`seed ${r.seed}, path ${r.path}`);
    print(
      `reproduce: vfio-mc walk ${target} --variant ${variant.name} --depth ${o.depth} --replay ${r.seed}:${r.path}`,
    );
  }
  return r.violation ? EXIT.violation : EXIT.ok;
}

function integer(name: string) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw)) throw new InvalidArgumentError(`${name} must be an integer, got '${raw}'`);
    return Number(raw);
  };
}

async function cmdPaths(target: string, o: Record<string, any>): Promise<number> {
  const { generatePaths, pathFromTrace, formatCoverage } = await import('../conformance/paths.ts');
  const model = await findModel(target);
  const variant = model.variant(o.variant);
  let file: ReturnType<typeof generatePaths>;
  if (o.fromTrace) {
    const events = eventsFromFile(await readJsonFile(o.fromTrace), o.fromTrace);
    file = pathFromTrace(variant, events, `${model.id}/${variant.name}/trace`);
  } else {
    file = generatePaths(variant, { depth: o.depth, maxStates: o.maxStates });
  }
  const text = JSON.stringify(file, null, 2);
  if (o.out) writeFileSync(o.out, `${text}\n`);
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

async function cmdConform(target: string, o: Record<string, any>): Promise<number> {
  const conform = await import('../conformance/conform.ts');
  const { openTarget } = await import('../conformance/target.ts');
  const model = await findModel(target);
  const variant = model.variant(o.variant);
  const run = conform.planRun(model, variant.name, await conform.loadPaths(variant, o.paths), o.path);
  if (o.kernel && o.target !== 'qemu') throw new ModelError('--kernel needs --target qemu');
  if (o.kernel && !existsSync(o.kernel)) throw new ModelError(`kernel image ${o.kernel} does not exist`);
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
      onPath: (done, total, last) => {
        if (showProgress) process.stderr.write(`\r[${done}/${total}] ${last.id}: ${last.status}        `);
      },
    });
  } finally {
    if (showProgress) process.stderr.write('\n');
    await t.close();
  }
  if (o.junit) writeFileSync(o.junit, conform.formatJunit([report]));
  print(
    o.json
      ? JSON.stringify({ ...report, bootMs: t.bootMs }, null, 2)
      : `${conform.formatConformReport(report, { pathsFile: o.paths, kernel: o.kernel, model: target })}\n  target boot: ${(t.bootMs / 1000).toFixed(1)} s`,
  );
  if (report.paths.some((p) => p.status === 'diverge')) return EXIT.violation;
  return report.paths.some((p) => p.status === 'setup-error') ? EXIT.usage : EXIT.ok;
}

export function buildProgram(): Command {
  const program = new Command('vfio-mc')
    .description('Model checker for the Linux VFIO and iommufd user API')
    .option('--debug', 'show stack traces on errors')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program
    .command('list')
    .description('registered models with their variants and properties')
    .option('--json', 'machine-readable output')
    .action(async (o) => setExit(await cmdList(o)));
  program
    .command('explore')
    .description('explore every interleaving of a model within the bounds')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .option('--variant <name>', 'design variant (default: the model’s default)')
    .option('--depth <n>', 'maximum depth (events from the initial state)', positiveInt('--depth'))
    .option('--max-states <n>', 'maximum number of distinct states', positiveInt('--max-states'))
    .addOption(
      new Option('--engine <kind>', 'successor engine')
        .choices(['auto', 'compiled', 'reference'])
        .default('auto'),
    )
    .option('--json', 'print one JSON object and nothing else')
    .option('--mermaid <file>', 'write the counterexamples as Mermaid sequence diagrams (Markdown)')
    .option('--no-progress', 'no progress line on the terminal')
    .action(async (target, o) => setExit(await cmdExplore(target, o)));
  program
    .command('verdicts')
    .description('explore every registered model and variant at default bounds; compare with expectations')
    .option('--models <ids>', 'comma-separated model ids')
    .option('--json', 'machine-readable output')
    .option('--no-progress', 'no progress line on the terminal')
    .action(async (o) => setExit(await cmdVerdicts(o)));
  program
    .command('walk')
    .description(
      'random deep walks beyond the BFS bound (fast-check), shrunk to a short trace on a violation',
    )
    .argument('<model>', 'a registered model id, or a path to a model file')
    .option('--variant <name>', 'design variant')
    .option('--runs <n>', 'number of walks', positiveInt('--runs'), 100)
    .option('--depth <n>', 'maximum steps a walk', positiveInt('--depth'), 1000)
    .option('--seed <n>', 'fast-check seed', integer('--seed'))
    .option('--replay <seed:path>', 'reproduce a failing walk exactly, as printed')
    .option('--json', 'machine-readable output')
    .action(async (target, o) => setExit(await cmdWalk(target, o)));
  program
    .command('paths')
    .description('conformance paths covering every uAPI transition and predicted errno within the bounds')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .option('--variant <name>', 'design variant')
    .option('--depth <n>', 'maximum depth', positiveInt('--depth'))
    .option('--max-states <n>', 'maximum number of distinct states', positiveInt('--max-states'))
    .option('--from-trace <file>', 'make a one-path file from a trace (explore --json or walk --json output)')
    .option('--out <file>', 'write the path file (JSON)')
    .option('--json', 'print the path file instead of the coverage summary')
    .action(async (target, o) => setExit(await cmdPaths(target, o)));
  program
    .command('conform')
    .description('replay conformance paths on a real kernel and compare every result with the model')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .option('--variant <name>', 'design variant')
    .addOption(
      new Option('--target <kind>', 'where the kernel runs').choices(['qemu', 'local']).default('qemu'),
    )
    .option('--kernel <bzImage>', 'kernel image for the qemu target (default: the cached build)')
    .option('--paths <file>', 'a path file (paths --out); default: the coverage set at the model bounds')
    .option('--path <id>', 'replay only this path')
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
    .command('replay')
    .description('replay a trace (JSON) on the model with xstate’s transition()')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .argument('<trace>', 'JSON: an array of events, a trace, or explore --json output')
    .option('--variant <name>', 'design variant')
    .option('--json', 'machine-readable output')
    .action(async (target, file, o) => setExit(await cmdReplay(target, file, o)));
  registerExport(program, setExit);
  return program;
}

let exitCode: number = EXIT.ok;
const setExit = (c: number) => {
  exitCode = c;
};

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is a usage error.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.ok : EXIT.usage;
    }
    const debug = argv.includes('--debug');
    if (e instanceof ModelError) {
      process.stderr.write(`vfio-mc: error: ${e.message}\n`);
      if (debug) process.stderr.write(`${e.stack}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`vfio-mc: internal error: ${(e as Error).message}\n`);
    if (debug) process.stderr.write(`${(e as Error).stack}\n`);
    return EXIT.usage;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
