/**
 * "Run the explorer": every interleaving of the variant within its bounds,
 * in a worker on the server. Its verdict table puts each property's verdict
 * beside what the variant expects; a counterexample opens as a path in the
 * page, one click per step.
 */
import type { RunReport, RunStatus } from '../shared/api.ts';

export interface VerdictsProps {
  readonly run: RunStatus;
  readonly start: () => void;
  readonly counterexample: (property: string, path: readonly string[]) => string;
  readonly what: string;
}

const n = (x: number) => x.toLocaleString('en');

function Table({
  report,
  counterexample,
}: {
  report: RunReport;
  counterexample: VerdictsProps['counterexample'];
}) {
  const unexplained = report.neverFired.filter((t) => !(t in report.unreachable));
  return (
    <>
      <p class="figures">
        {report.complete
          ? 'complete: every reachable state explored'
          : `INCOMPLETE: cut off by the ${report.cutBy} bound`}
        {' · '}
        {n(report.states)} states, {n(report.transitions)} transitions, depth {report.depth},{' '}
        {report.seconds.toFixed(1)} s
      </p>
      <table class="verdict-table">
        <thead>
          <tr>
            <th>property</th>
            <th>kind</th>
            <th>verdict</th>
            <th>expected</th>
            <th>counterexample</th>
          </tr>
        </thead>
        <tbody>
          {report.verdicts.map((v) => {
            const asExpected = (v.status === 'violated') === v.expectedViolated;
            return (
              <tr key={v.name} class={v.status} data-verdict={v.name}>
                <td>{v.name}</td>
                <td>{v.kind}</td>
                <td class="status">
                  {v.status}
                  {v.note && <span class="note"> ({v.note})</span>}
                </td>
                <td class={asExpected ? 'as-expected' : 'unexpected'}>
                  {asExpected
                    ? 'as expected'
                    : `UNEXPECTED (expected ${v.expectedViolated ? 'violated' : 'to hold'})`}
                </td>
                <td>
                  {v.counterexample &&
                    (v.counterexample.steps > 0 ? (
                      <a
                        href={counterexample(v.name, v.counterexample.path)}
                        data-counterexample={v.name}
                        title={v.counterexample.description}
                      >
                        open: {v.counterexample.steps} step{v.counterexample.steps === 1 ? '' : 's'}
                      </a>
                    ) : (
                      <span>{v.counterexample.description}</span>
                    ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p class="coverage">
        coverage:{' '}
        {report.neverFired.length === 0
          ? `all ${report.transitionCount} transitions fired`
          : `${report.neverFired.length} of ${report.transitionCount} transitions never fired (greyed in the diagrams)` +
            (unexplained.length ? `; not listed as unreachable: ${unexplained.join(', ')}` : '')}
      </p>
    </>
  );
}

export function Verdicts({ run, start, counterexample, what }: VerdictsProps) {
  return (
    <section class="verdicts" data-run={run.status}>
      <h2>Explorer</h2>
      {run.status !== 'running' && (
        <p>
          <button type="button" class="run" onClick={start}>
            {run.status === 'none' ? 'Run the explorer' : 'Run it again'}
          </button>{' '}
          <span class="hint">every interleaving of {what} within its bounds</span>
        </p>
      )}
      {run.status === 'running' && (
        <p class="progress">
          exploring…{' '}
          {run.progress &&
            `${n(run.progress.states)} states, depth ${run.progress.depth}, ${run.progress.seconds.toFixed(1)} s`}
        </p>
      )}
      {run.status === 'failed' && <p class="error">{run.error}</p>}
      {run.status === 'done' && <Table report={run.report} counterexample={counterexample} />}
    </section>
  );
}
