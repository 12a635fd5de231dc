/**
 * What the command line writes, and where: standard output that ends quietly
 * when the reader goes away (`vfio-mc list | head -1`), output paths checked
 * before a search starts (so a long run never loses its report to ENOENT at
 * the end), trail files, and the one JSON shape promised to scripts.
 */
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ModelError, type ResolvedVariant } from '../explorer/model.ts';
import type { ExploreResult, Violation } from '../explorer/result.ts';
import { toTrail, trailName } from '../explorer/trail.ts';

let installed = false;
let stdoutGone = false;

/**
 * A reader that goes away (`vfio-mc replay t.json | head -1`: EPIPE) ends the
 * output quietly, as `cat`'s does, and changes nothing else: the command runs
 * on to its end, which is only the rest of its printing (the verdict is
 * decided before any output), and exits with the verdict's code. Exiting at
 * the EPIPE (with 0, as this did) turned a confirmed violation into a pass
 * under `set -o pipefail`. The same for standard error (`2>&1 | head`).
 */
export function endQuietlyOnEpipe(): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      // ERR_STREAM_DESTROYED: a write queued after the EPIPE closed the stream.
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') {
        if (stream === process.stdout) stdoutGone = true;
        return;
      }
      throw e;
    });
  }
}

/** Standard output's reader went away (also when a write to /dev/stdout failed with EPIPE). */
export function stdoutClosed(): void {
  stdoutGone = true;
}

export const print = (s: string): void => {
  if (!stdoutGone) process.stdout.write(`${s}\n`);
};

/** Throws a ModelError unless a file can be written at `path` (checked before any work starts). */
export function checkWritableFile(path: string, option: string): void {
  const full = resolve(path);
  if (existsSync(full) && statSync(full).isDirectory())
    throw new ModelError(`${option} ${path}: is a directory, not a file`);
  checkWritableDir(dirname(full), `${option} ${path}`);
  if (existsSync(full)) {
    try {
      accessSync(full, constants.W_OK);
    } catch {
      throw new ModelError(`${option} ${path}: not writable`);
    }
  }
}

/** Throws a ModelError unless `dir` is an existing, writable directory. */
export function checkWritableDir(dir: string, what: string): void {
  if (!existsSync(dir)) throw new ModelError(`${what}: directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new ModelError(`${what}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new ModelError(`${what}: directory ${dir} is not writable`);
  }
}

/** Write each counterexample's trail into `dir`; the violations come back naming their files. */
export function writeTrails(
  violations: readonly Violation[],
  variant: ResolvedVariant,
  dir: string,
  modelFile: string | undefined,
): Violation[] {
  return violations.map((v) => {
    if (v.kind === 'unreachable') return v; // nothing to replay: no state satisfies the property
    const file = join(dir, trailName(variant.modelId, variant.name, v.property));
    writeFileSync(file, `${JSON.stringify(toTrail(v, variant, modelFile), null, 2)}\n`);
    return { ...v, trail: file };
  });
}

/** The JSON shape promised to scripts: stable field names, nothing printed besides it. */
export function toJson(r: ExploreResult) {
  return {
    model: r.model,
    variant: r.variant,
    params: r.params,
    complete: r.complete,
    states: r.states,
    transitions: r.transitions,
    depth: r.depth,
    seconds: r.seconds,
    statesPerSecond: r.statesPerSecond,
    peakMemoryMB: r.peakMemoryMB,
    spilledMB: r.spilledMB,
    collisionProbability: r.collisionProbability,
    engine: r.engine,
    checking: r.checking,
    reductions: r.reductions,
    ...(r.assumptions && { assumptions: r.assumptions }),
    ...(r.partialOrder && { partialOrder: r.partialOrder }),
    workers: r.workers,
    bounds: r.bounds,
    ...(r.cutBy && { cutBy: r.cutBy }),
    properties: r.properties,
    coverage: r.coverage,
    violations: r.violations.map(violationJson),
  };
}

export function violationJson(v: Violation) {
  return {
    property: v.property,
    kind: v.kind,
    ...(v.cycleStart !== undefined && { cycleStart: v.cycleStart }),
    ...(v.trail && { trail: v.trail }),
    ...(v.waiting && { waiting: v.waiting }),
    ...(v.reducedOnly && { reducedOnly: true }),
    trace: v.trace.map((s) => ({
      actor: s.actor,
      event: s.event,
      ...(s.label !== undefined && { label: s.label }),
      state: s.state,
      ...(s.call && { call: true }),
      ...(s.result !== undefined && { result: s.result }),
    })),
  };
}
