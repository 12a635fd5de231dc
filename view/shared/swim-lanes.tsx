/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * A path in per-actor swim lanes, as the text report prints it: one row per
 * step, the step's uAPI label and result in the lane of the actor that took
 * it, and the fields it changed, expandable. The page (where each row links
 * to the state after it) and the HTML report (rendered once, on the server)
 * both draw paths with this.
 */
import type { StepView } from './api.ts';

export interface SwimLanesProps {
  readonly actors: readonly string[];
  readonly steps: readonly StepView[];
  /** The page: the step whose state is shown (0: the initial state); rows after it are the way forward. */
  readonly current?: number;
  /** The page: the address of the state after `i` steps. */
  readonly href?: (i: number) => string;
  /** Liveness: the first step of the cycle that repeats forever. */
  readonly cycleStart?: number;
}

function Changes({ step }: { step: StepView }) {
  if (step.changes.length === 0) return <span class="none">no field changed</span>;
  const [first, ...rest] = step.changes;
  if (rest.length === 0) return <code>{first.text}</code>;
  return (
    <details>
      <summary>
        <code>{first.text}</code> <span class="more">+{rest.length} more</span>
      </summary>
      <ul>
        {step.changes.map((c) => (
          <li key={c.path}>
            <code>{c.text}</code>
          </li>
        ))}
      </ul>
    </details>
  );
}

export function SwimLanes({ actors, steps, current, href, cycleStart }: SwimLanesProps) {
  const lanes = actors;
  const cls = (i: number) =>
    current === undefined ? '' : i === current ? 'current' : i > current ? 'ahead' : 'behind';
  const num = (i: number) => (href ? <a href={href(i)}>{i}</a> : String(i));
  return (
    <table class="lanes">
      <thead>
        <tr>
          <th class="num">#</th>
          {lanes.map((a) => (
            <th key={a}>{a}</th>
          ))}
          <th>changes</th>
        </tr>
      </thead>
      <tbody>
        {href && (
          <tr class={cls(0)} data-step={0}>
            <td class="num">{num(0)}</td>
            <td colSpan={lanes.length + 1} class="initial">
              <a href={href(0)}>initial state</a>
            </td>
          </tr>
        )}
        {steps.map((s, k) => {
          const i = k + 1;
          return [
            cycleStart === k && (
              <tr class="cycle" key={`c${k}`}>
                <td class="num">↻</td>
                <td colSpan={lanes.length + 1}>cycle: the steps below repeat forever</td>
              </tr>
            ),
            <tr class={cls(i)} key={i} data-step={i}>
              <td class="num">{num(i)}</td>
              {lanes.map((a) => (
                <td key={a} class="lane">
                  {s.actors.includes(a) && (href ? <a href={href(i)}>{s.text}</a> : <span>{s.text}</span>)}
                </td>
              ))}
              <td class="changes">
                <Changes step={s} />
              </td>
            </tr>,
          ];
        })}
      </tbody>
    </table>
  );
}
