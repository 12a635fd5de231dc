/**
 * The properties in the state shown: each invariant holds or not here, a
 * deadlock is flagged with every actor that is stuck and what it waits for;
 * temporal properties are about whole runs, so their verdict comes from the
 * explorer.
 */
import type { RunStatus, StateView } from '../shared/api.ts';

export interface PropertiesProps {
  readonly view: StateView;
  readonly temporal: readonly { readonly name: string; readonly kind: string }[];
  readonly run: RunStatus;
}

export function Properties({ view, temporal, run }: PropertiesProps) {
  const stuck = view.actors.filter((a) => !a.terminated);
  const verdict = (name: string) =>
    run.status === 'done' ? run.report.verdicts.find((v) => v.name === name)?.status : undefined;
  return (
    <section class="properties">
      <h2>Properties here</h2>
      {view.deadlock && (
        <div class="deadlock" data-deadlock>
          <b>Deadlock</b>: no event is enabled and {stuck.map((a) => a.name).join(', ')}{' '}
          {stuck.length === 1 ? 'has' : 'have'} not terminated.
          <ul>
            {stuck.map((a) => (
              <li key={a.name}>
                <b>{a.name}</b>: {a.waiting ?? 'not blocked'}
              </li>
            ))}
          </ul>
        </div>
      )}
      {view.done && <div class="done">Every actor has terminated.</div>}
      <ul class="invariants">
        {view.invariants.map((i) => (
          <li key={i.name} class={i.status} data-invariant={i.name} data-status={i.status}>
            <span class="mark">{i.status === 'holds' ? '✓' : i.status === 'violated' ? '✗' : '!'}</span>{' '}
            {i.name}
            <span class="status">{i.status === 'error' ? ` threw: ${i.error}` : ` ${i.status}`}</span>
          </li>
        ))}
        {temporal.map((t) => (
          <li key={t.name} class="temporal" data-property={t.name}>
            <span class="mark">◇</span> {t.name}{' '}
            <span class="status">
              ({t.kind}, over whole runs: {verdict(t.name) ?? 'run the explorer'})
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
