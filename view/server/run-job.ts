/**
 * One exploration in a worker thread: load the model as the server did (a
 * registered id or a file), explore the variant, and post back its progress
 * and then a report of plain data (run-report.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { explore } from '../../explorer/explore.ts';
import { parseParamAssignments } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import { runReport } from './run-report.ts';

export interface RunJob {
  readonly target: string;
  readonly variant: string;
  readonly set: string;
}

export type RunMessage =
  | { readonly kind: 'progress'; readonly states: number; readonly depth: number; readonly seconds: number }
  | { readonly kind: 'done'; readonly report: ReturnType<typeof runReport> }
  | { readonly kind: 'failed'; readonly error: string };

async function run(job: RunJob): Promise<RunMessage> {
  try {
    const model = await findModel(job.target);
    const variant = model.variant(job.variant, parseParamAssignments(job.set));
    const result = await explore(variant, {
      onProgress: (p) =>
        parentPort?.postMessage({
          kind: 'progress',
          states: p.states,
          depth: p.depth,
          seconds: p.seconds,
        } satisfies RunMessage),
    });
    return { kind: 'done', report: runReport(variant, result) };
  } catch (e) {
    return { kind: 'failed', error: (e as Error).message };
  }
}

parentPort?.postMessage(await run(workerData as RunJob));
