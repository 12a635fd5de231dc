/**
 * Checkpoints are bound to their model (issue 23, part 5): a checkpoint
 * records the tool version, the variant and parameters, and the digest of
 * the model file and of every file it imports; `--resume` on anything else
 * is refused with exit 2, naming what changed. Before, a checkpoint taken,
 * the imported limits file edited, then resumed gave "complete, holds"
 * (exit 0) on a model that, run fresh, is violated (the violating state was
 * judged, under the old limit, before the checkpoint).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Checkpoint, readCheckpoint, StoppedAtCheckpoint } from '../../explorer/checkpoint.ts';
import { explore } from '../../explorer/explore.ts';
import { ModelError, type ResolvedVariant } from '../../explorer/model.ts';
import { modelChanges, modelFiles } from '../../explorer/model-digest.ts';
import { findModel } from '../../explorer/registry.ts';

const REPO = join(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'vfio-mc.js');
// Inside the repository (out/ is ignored by git): vitest loads the model in-process only from there.
mkdirSync(join(REPO, 'out'), { recursive: true });
const dir = mkdtempSync(join(REPO, 'out', 'ckmodel-'));
const modelFile = join(dir, 'counter.ts');
const limitsFile = join(dir, 'limits.ts');
const ckFile = join(dir, 'search.ckpt');

// A counter modulo 9 in two variants; the value the invariant forbids lives in an imported file.
const MODEL = `import { assign, setup } from 'xstate';
import { defineModel } from '../../explorer/model.ts';
import { LIMIT } from './limits.ts';

const machine = (step: number) =>
  setup({ types: { context: {} as { n: number }, events: {} as { type: 'Inc' } } }).createMachine({
    id: 'counter',
    context: { n: 0 },
    on: { Inc: { actions: assign({ n: ({ context }) => (context.n + step) % 9 }) } },
  });

export default defineModel({
  id: 'counter',
  machine: machine(1),
  events: () => [{ type: 'Inc' }],
  invariants: { notAtLimit: (s) => s.context.n !== LIMIT },
  variants: { one: {}, two: { machine: machine(2) } },
});
`;
const limits = (n: number) => `export const LIMIT = ${n};\n`;

const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [BIN, ...args], { cwd: dir }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let variant: ResolvedVariant;
let checkpoint: Checkpoint;

beforeAll(async () => {
  writeFileSync(modelFile, MODEL);
  writeFileSync(limitsFile, limits(100));
  variant = (await findModel(modelFile)).variant('one');
  let levels = 0;
  await expect(
    explore(variant, {
      workers: 2,
      checkpoint: { file: ckFile, everySeconds: 0, stopRequested: () => ++levels > 3 },
    }),
  ).rejects.toBeInstanceOf(StoppedAtCheckpoint);
  checkpoint = readCheckpoint(ckFile);
});

describe('a checkpoint records its model', () => {
  it('the model file and the file it imports, with their digests, the tool version, variant and parameters', () => {
    expect(Object.keys(checkpoint.model.files).sort()).toEqual(['counter.ts', 'limits.ts']);
    expect(checkpoint.model.files).toEqual(modelFiles(modelFile));
    expect(checkpoint.tool).toMatch(/^\d+\.\d+\.\d+/);
    expect(checkpoint.source).toEqual({ file: modelFile, variant: 'one', params: {} });
  });

  it('resumes the unchanged search', async () => {
    const rest = await explore(variant, { resume: checkpoint });
    expect(rest.complete).toBe(true);
    expect(rest.states).toBe(9);
  });

  it('refuses another variant, another tool version, a version 1 checkpoint, naming each', async () => {
    const two = (await findModel(modelFile)).variant('two');
    await expect(explore(two, { resume: checkpoint })).rejects.toThrow(/variant one -> two/);
    await expect(explore(variant, { resume: { ...checkpoint, tool: '0.0.1' } })).rejects.toThrow(
      /tool version 0\.0\.1 -> /,
    );
    const old = join(dir, 'old.ckpt');
    const { serialize } = await import('node:v8');
    writeFileSync(old, serialize({ ...checkpoint, version: 1 }));
    expect(() => readCheckpoint(old)).toThrow(
      /version 1 is not supported.*does not record its model's files/,
    );
  });

  it('names a file edited, no longer imported, newly imported', () => {
    expect(modelChanges({ a: '1', b: '2' }, { a: '3', c: '4' })).toEqual([
      'a edited',
      'b no longer imported (or gone)',
      'c newly imported',
    ]);
  });
});

describe('--resume after the model was edited', () => {
  it('is refused with exit 2 naming the edited file, where the fresh run is violated', async () => {
    // n = 2 was reached, and judged, before the checkpoint (level 3): a resumed search never sees it again.
    writeFileSync(limitsFile, limits(2));
    try {
      // In-process: explore() itself refuses (API users are covered too).
      await expect(explore(variant, { resume: checkpoint })).rejects.toThrow(ModelError);
      await expect(explore(variant, { resume: checkpoint })).rejects.toThrow(/limits\.ts edited/);
      // The CLI, in fresh processes (so the edited file is what gets loaded).
      const resumed = await run('explore', '--resume', ckFile, '--no-progress', '--no-trails');
      expect(resumed.stderr).toMatch(/model files changed: limits\.ts edited/);
      expect(resumed.code).toBe(2);
      const fresh = await run('explore', modelFile, '--variant', 'one', '--no-progress', '--no-trails');
      expect(fresh.code).toBe(1);
      expect(fresh.stdout).toMatch(/notAtLimit\s+invariant\s+violated/);
    } finally {
      writeFileSync(limitsFile, limits(100));
    }
  }, 60_000);
});
