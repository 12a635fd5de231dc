/**
 * Progress on a terminal: a status line (states, depth, frontier, states/s)
 * drawn with cli-progress on stderr, shown only for runs longer than a second
 * and only when stderr is a TTY. --json and --no-progress turn it off. A run
 * of many searches (verdicts) passes the time it started, so the line shows
 * once the whole run is past a second, with the search's place in the run in
 * its label.
 */
import cliProgress from 'cli-progress';
import type { Progress } from '../explorer/bfs.ts';

export interface ProgressSink {
  update(p: Progress): void;
  stop(): void;
}

const QUIET: ProgressSink = { update() {}, stop() {} };

export function progressLine(label: string, enabled: boolean, runStarted?: number): ProgressSink {
  if (!enabled || !process.stderr.isTTY) return QUIET;
  let bar: cliProgress.SingleBar | undefined;
  const offset = runStarted === undefined ? 0 : (performance.now() - runStarted) / 1000;
  return {
    update(p) {
      if (!bar && p.seconds + offset < 1) return;
      const payload = {
        label,
        states: p.states.toLocaleString('en'),
        depth: p.depth,
        frontier: p.frontier.toLocaleString('en'),
        rate: Math.round(p.states / Math.max(p.seconds, 1e-3)).toLocaleString('en'),
      };
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            format: '{label} | {states} states | depth {depth} | frontier {frontier} | {rate} states/s',
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(0, 0, payload);
      }
      bar.update(0, payload);
    },
    stop() {
      bar?.stop();
    },
  };
}
