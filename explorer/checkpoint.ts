/**
 * Checkpoints of a parallel search (`--checkpoint FILE`, `--resume FILE`):
 * between two BFS levels, every partition's visited set, frontier, event
 * table and dictionary, and the coordinator's counts, in one file written
 * with node's structured serialisation (v8.serialize keeps typed arrays as
 * they are). The file names the model file, variant and parameters, and
 * the worker count (ownership of a state depends on it), so a resume runs
 * the same search; it ends with the same counts as an uninterrupted run.
 * It is bound to its model: it records the tool version and the digest of
 * the model file and of every file it imports (model-digest.ts), and a
 * resume on anything else is refused, naming what changed: the states in a
 * checkpoint were computed by that model, and continuing them with another
 * one gives a verdict on neither (an edited guard, a "holds" on a model
 * that, run fresh, is violated).
 * A file is written to FILE.tmp and renamed, so a crash while writing
 * leaves the previous checkpoint whole.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import { ModelError, type Params, type ResolvedVariant, type VariantSource } from './model.ts';
import { type ModelFiles, modelChanges, modelDigest, modelFiles, TOOL_VERSION } from './model-digest.ts';
import type { PartitionSave } from './worker.ts';

export const CHECKPOINT_FORMAT = 'vfio-mc checkpoint';

/** The coordinator's part: where the search is and what it has found so far. */
export interface CoordinatorState {
  /** The next level to expand. */
  readonly depth: number;
  readonly states: number;
  readonly transitions: number;
  readonly firstViolation: [string, [number, number]][];
  /** Seconds the search had run before this checkpoint. */
  readonly seconds: number;
}

export interface Checkpoint {
  readonly format: typeof CHECKPOINT_FORMAT;
  /** 2: with the model's files (version 1 had none: it cannot be checked, so it is not resumed). */
  readonly version: 2;
  readonly tool: string;
  readonly source: VariantSource;
  /** The model file and what it imports, at the time of the checkpoint. */
  readonly model: { readonly digest: string; readonly files: ModelFiles };
  readonly workers: number;
  readonly bounds: { readonly depth: number; readonly maxStates: number };
  readonly check: boolean;
  readonly symmetry: boolean;
  /** The search stored views (--view); absent in checkpoints from before it existed. */
  readonly view?: boolean;
  readonly coordinator: CoordinatorState;
  readonly partitions: PartitionSave[];
}

export function writeCheckpoint(file: string, c: Checkpoint): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, serialize(c));
  renameSync(tmp, file);
}

export function readCheckpoint(file: string): Checkpoint {
  let c: Checkpoint;
  try {
    c = deserialize(readFileSync(file)) as Checkpoint;
  } catch (e) {
    throw new ModelError(`${file}: not a vfio-mc checkpoint (${(e as Error).message})`);
  }
  if (c?.format !== CHECKPOINT_FORMAT) throw new ModelError(`${file}: not a vfio-mc checkpoint`);
  if (c.version !== 2)
    throw new ModelError(
      `${file}: checkpoint version ${c.version} is not supported (2 is: ` +
        `a version 1 checkpoint does not record its model's files, so it cannot be checked against them)`,
    );
  return c;
}

/** What a checkpoint records of the model it is taken on. */
export function modelRecord(source: VariantSource): Checkpoint['model'] {
  const files = modelFiles(source.file);
  return { digest: modelDigest(files), files };
}

const paramsText = (p: Params) =>
  Object.keys(p).length === 0
    ? 'none'
    : Object.keys(p)
        .sort()
        .map((k) => `${k}=${p[k]}`)
        .join(',');

/**
 * Refuse to resume a checkpoint on anything but the search it was taken on:
 * the same model file, unchanged along with every file it imports, the same
 * tool version, variant and parameters. A ModelError (exit 2) that names each
 * difference.
 */
export function checkResumable(c: Checkpoint, variant: ResolvedVariant, file = 'the checkpoint'): void {
  const changed: string[] = [];
  if (c.tool !== TOOL_VERSION) changed.push(`tool version ${c.tool} -> ${TOOL_VERSION}`);
  const source = variant.source;
  if (source === undefined) {
    changed.push(
      `model '${variant.modelId}' was not loaded from a file (the checkpoint's is ${c.source.file})`,
    );
  } else {
    if (source.file !== c.source.file) changed.push(`model file ${c.source.file} -> ${source.file}`);
    if (source.variant !== c.source.variant) changed.push(`variant ${c.source.variant} -> ${source.variant}`);
    if (paramsText(source.params) !== paramsText(c.source.params))
      changed.push(`parameters ${paramsText(c.source.params)} -> ${paramsText(source.params)}`);
    if (source.file === c.source.file) {
      const now = modelFiles(source.file);
      if (modelDigest(now) !== c.model.digest) {
        const files = modelChanges(c.model.files, now);
        changed.push(`model files changed: ${files.length > 0 ? files.join(', ') : 'the digest differs'}`);
      }
    }
  }
  if (changed.length > 0)
    throw new ModelError(
      `${file} was taken on another search; not resuming it (start the search again): ${changed.join('; ')}`,
    );
}

/** How often a running search writes its checkpoint, and the signal that asks it to stop after one. */
export interface CheckpointPolicy {
  readonly file: string;
  /** Minimum seconds between two periodic checkpoints. */
  readonly everySeconds: number;
  /** Set by a signal handler: write a checkpoint after the current level, then stop. */
  stopRequested: () => boolean;
}

/** Thrown when a search stopped on request after writing its checkpoint. */
export class StoppedAtCheckpoint extends Error {
  override name = 'StoppedAtCheckpoint';
  constructor(
    readonly file: string,
    readonly depth: number,
    readonly states: number,
  ) {
    super(`stopped after level ${depth} with ${states} states; checkpoint written to ${file}`);
  }
}
