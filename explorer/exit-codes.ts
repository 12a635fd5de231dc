/**
 * The exit codes, one table for every subcommand (README "Exit codes", and
 * `--help`). CI runs `vfio-mc explore ...; echo $?` and trusts the number,
 * so the rule is: 0 only for a verdict that covers every state within
 * bounds the user (or the model) chose; a search that a resource cut short
 * (memory, the default state or depth cap, a lost node) is never 0.
 *
 * The code is decided from the result, before any output is written, and a
 * reader that goes away (`| head -1`, EPIPE) never changes it
 * (cli-output.ts).
 */
import type { ExploreResult } from './result.ts';

export const EXIT = {
  /** Every property checked holds over a complete search (or one complete to a depth the user set). */
  ok: 0,
  /** A property violated, confirmed on xstate's transition(); or a verdict other than expected (verdicts). */
  violation: 1,
  /** A usage or model error: one line `vfio-mc: error: ...`. */
  usage: 2,
  /** --require-coverage: a transition never fired and the model does not list it as unreachable. */
  uncovered: 3,
  /**
   * No violation found, but the search was cut short: by a resource (--memory, the default
   * state or depth cap, --max-states, a lost node of a distributed search), or, with
   * --require-complete, by any bound.
   */
  incomplete: 4,
  /** --compare-reductions: a reduced search judged some property differently from the unreduced one. */
  reductionsDiffer: 6,
  /** Stopped by SIGINT or SIGTERM (the partial report is printed). */
  interrupted: 130,
} as const;

/** The table as `--help` and the README print it. */
export const EXIT_TABLE: readonly (readonly [number, string])[] = [
  [EXIT.ok, 'every property checked holds over a complete search (or one complete to a --depth you set)'],
  [EXIT.violation, 'a property violated (confirmed); verdicts: a verdict other than expected'],
  [EXIT.usage, 'a usage or model error'],
  [EXIT.uncovered, '--require-coverage: a transition never fired and is not listed as unreachable'],
  [
    EXIT.incomplete,
    'no violation, but the search was cut short (memory, state cap, default depth cap, lost node; ' +
      'any bound with --require-complete)',
  ],
  [EXIT.reductionsDiffer, '--compare-reductions: a reduction changed a verdict'],
  [EXIT.interrupted, 'interrupted (SIGINT, SIGTERM): the partial report is printed'],
];

export function formatExitTable(): string {
  return ['Exit codes:', ...EXIT_TABLE.map(([c, m]) => `  ${String(c).padStart(3)}  ${m}`)].join('\n');
}

/**
 * How much of the state space a search covered: 'complete' (every reachable
 * state), 'to-depth' (every state within a depth bound the user or the model
 * set: a bounded verdict, as asked), or 'cut' (a resource stopped it: the
 * default caps, --max-states, --memory; what it reached is not a level of the
 * state space one can name).
 */
export type SearchScope = 'complete' | 'to-depth' | 'cut';

export function searchScope(r: Pick<ExploreResult, 'complete' | 'cutBy' | 'depthExplicit'>): SearchScope {
  if (r.complete) return 'complete';
  return r.cutBy === 'depth' && r.depthExplicit === true ? 'to-depth' : 'cut';
}

export interface SearchExitFlags {
  readonly requireCoverage?: boolean;
  readonly requireComplete?: boolean;
}

/**
 * The exit code of one search: an interrupted one is 130; then a violation first (it is a real one, whatever
 * cut the search); then a cut-short search (4, before coverage: a transition
 * that never fired may be beyond the cut); then --require-coverage; then a
 * depth-bounded search under --require-complete; then a property the search
 * could not judge (a temporal property on a bounded search is 'unknown',
 * never 'holds').
 */
export function searchExit(
  r: Pick<ExploreResult, 'complete' | 'cutBy' | 'depthExplicit' | 'violations' | 'properties'>,
  flags: SearchExitFlags,
  uncovered: () => boolean,
): number {
  // Interrupted first: the user stopped it, whatever the partial report found (it says so).
  if (r.cutBy === 'interrupted') return EXIT.interrupted;
  if (r.violations.length > 0) return EXIT.violation;
  const scope = searchScope(r);
  if (scope === 'cut') return EXIT.incomplete;
  if (flags.requireCoverage && uncovered()) return EXIT.uncovered;
  if (flags.requireComplete && scope !== 'complete') return EXIT.incomplete;
  if (r.properties.some((p) => p.status === 'unknown')) return EXIT.incomplete;
  return EXIT.ok;
}
