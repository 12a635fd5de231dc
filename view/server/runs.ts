/**
 * Explorations started from the page, one worker thread each (a search is
 * CPU-bound and would otherwise stall every other request), one at a time
 * (the machine's cores are for the search). The last run of each variant is
 * kept: its verdicts for the table, its coverage for the diagrams.
 */
import { Worker } from 'node:worker_threads';
import type { RunStatus } from '../shared/api.ts';
import type { RunJob, RunMessage } from './run-job.ts';

const WORKER = new URL('./run-worker.mjs', import.meta.url);

export class Runs {
  private readonly runs = new Map<string, RunStatus>();
  private busy: string | undefined;
  private busyWhat = '';

  constructor(
    private readonly target: string,
    private readonly log: (line: string) => void,
  ) {}

  private key = (variant: string, set: string) => `${variant}|${set}`;

  status(variant: string, set: string): RunStatus {
    return this.runs.get(this.key(variant, set)) ?? { status: 'none' };
  }

  /** Start a run unless one is going; a run of another variant must end first. */
  start(variant: string, set: string): RunStatus | { refused: string } {
    const key = this.key(variant, set);
    if (this.busy === key) return this.status(variant, set);
    if (this.busy !== undefined) {
      return { refused: `an exploration of ${this.busyWhat} is running; wait for it to finish` };
    }
    const what = `${variant}${set ? ` --set ${set}` : ''}`;
    this.busy = key;
    this.busyWhat = what;
    this.runs.set(key, { status: 'running' });
    this.log(`exploring ${this.target} / ${what}`);
    const worker = new Worker(WORKER, { workerData: { target: this.target, variant, set } satisfies RunJob });
    const finish = (s: RunStatus) => {
      this.runs.set(key, s);
      this.busy = undefined;
      this.log(
        s.status === 'done'
          ? `explored ${this.target} / ${what}: ${s.report.states} states in ${s.report.seconds.toFixed(1)} s`
          : `exploring ${this.target} / ${what} failed: ${s.status === 'failed' ? s.error : s.status}`,
      );
    };
    worker.on('message', (m: RunMessage) => {
      if (m.kind === 'progress') this.runs.set(key, { status: 'running', progress: m });
      else if (m.kind === 'done') finish({ status: 'done', report: m.report });
      else finish({ status: 'failed', error: m.error });
    });
    worker.on('error', (e) => finish({ status: 'failed', error: `the exploration crashed: ${e.message}` }));
    worker.on('exit', (code) => {
      if (this.busy === key)
        finish({ status: 'failed', error: `the exploration's worker exited with code ${code}` });
    });
    return this.status(variant, set);
  }
}
