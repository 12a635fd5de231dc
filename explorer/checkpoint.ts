/**
 * Checkpoints of a parallel search (`--checkpoint FILE`, `--resume FILE`):
 * between two BFS levels, every partition's visited set, frontier, event
 * table and dictionary, and the coordinator's counts, in one file written
 * with node's structured serialisation (v8.serialize keeps typed arrays as
 * they are). The file names the model file, variant and parameters, and
 * the worker count (ownership of a state depends on it), so a resume runs
 * the same search; it ends with the same counts as an uninterrupted run.
 * A file is written to FILE.tmp and renamed, so a crash while writing
 * leaves the previous checkpoint whole.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import { ModelError, type VariantSource } from './model.ts';
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
  readonly version: 1;
  readonly tool: string;
  readonly source: VariantSource;
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
  if (c.version !== 1)
    throw new ModelError(`${file}: checkpoint version ${c.version} is not supported (1 is)`);
  return c;
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
