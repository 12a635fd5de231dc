/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * `--html FILE` on explore and verdicts: one self-contained HTML file that
 * opens with no network. It holds the run's parameters and figures, the
 * verdict table, every counterexample as swim lanes whose state changes
 * expand, its Mermaid sequence diagram, and the coverage. Rendered once, here
 * (Preact's server renderer, with the page's own swim-lane component); the
 * only script is Mermaid's own bundle, inlined, which draws the diagrams when
 * the file is opened. A Content-Security-Policy forbids every fetch, so the
 * file cannot depend on the network by accident.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { renderToString } from 'preact-render-to-string';
import { describeViolation } from '../../explorer/report-text.ts';
import { formatMermaid, mermaidTitle } from '../../explorer/report-mermaid.ts';
import type { ExploreResult, Violation } from '../../explorer/result.ts';
import { SwimLanes } from '../shared/swim-lanes.tsx';
import { stepViews } from './steps.ts';

export interface ReportRun {
  readonly result: ExploreResult;
  readonly actors: readonly string[];
  /** verdicts: whether the row is as the variant declares, and why not. */
  readonly asExpected?: boolean;
  readonly why?: string;
}

export interface ReportInput {
  /** The command line that made it. */
  readonly command: string;
  readonly version: string;
  readonly runs: readonly ReportRun[];
}

const CSS = readFileSync(new URL('../client/style.css', import.meta.url), 'utf8');
const require = createRequire(import.meta.url);

/** Mermaid's browser bundle, safe to put inside a <script> element. */
const mermaidScript = () =>
  readFileSync(require.resolve('mermaid/dist/mermaid.min.js'), 'utf8').replace(/<\/script/gi, '<\\/script');

const anchor = (r: ExploreResult) => `run-${r.model}-${r.variant}`.replace(/[^A-Za-z0-9_-]/g, '_');
const n = (x: number) => x.toLocaleString('en');
const violatedOf = (r: ExploreResult) =>
  r.properties.filter((p) => p.status === 'violated').map((p) => p.name);

function VerdictTable({ runs }: { runs: readonly ReportRun[] }) {
  const judged = runs.some((r) => r.asExpected !== undefined);
  return (
    <table class="verdict-table">
      <thead>
        <tr>
          <th>model</th>
          <th>variant</th>
          <th>states</th>
          <th>complete</th>
          <th>s</th>
          {judged && <th>verdict</th>}
          <th>violated</th>
        </tr>
      </thead>
      <tbody>
        {runs.map(({ result: r, asExpected }) => (
          <tr key={anchor(r)} data-row={`${r.model}/${r.variant}`}>
            <td>{r.model}</td>
            <td>
              <a href={`#${anchor(r)}`}>{r.variant}</a>
            </td>
            <td>{n(r.states)}</td>
            <td>{r.complete ? 'yes' : `no (${r.cutBy})`}</td>
            <td>{r.seconds.toFixed(1)}</td>
            {judged && (
              <td class={asExpected ? 'as-expected' : 'unexpected'}>
                {asExpected ? 'as expected' : <a href={`#${anchor(r)}`}>UNEXPECTED</a>}
              </td>
            )}
            <td>{violatedOf(r).join(', ') || '-'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Figures({ r }: { r: ExploreResult }) {
  const rows: [string, string][] = [
    [
      'parameters',
      Object.entries(r.params)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || 'none',
    ],
    ['bounds', `depth ${r.bounds.depth}, ${n(r.bounds.maxStates)} states`],
    [
      'search',
      r.complete ? 'complete: every reachable state explored' : `INCOMPLETE: cut off by the ${r.cutBy} bound`,
    ],
    ['states', `${n(r.states)} distinct, ${n(r.transitions)} transitions, depth ${r.depth}`],
    [
      'time',
      `${r.seconds.toFixed(2)} s, ${n(Math.round(r.statesPerSecond))} states/s, peak ${r.peakMemoryMB} MB`,
    ],
    [
      'engine',
      `${r.engine}${r.engineNote ? ` (${r.engineNote})` : ''}, checking mode ${r.checking ? 'on' : 'off'}`,
    ],
    ['collision probability', r.collisionProbability.toExponential(1)],
  ];
  return (
    <table class="figures">
      <tbody>
        {rows.map(([k, v]) => (
          <tr key={k}>
            <th>{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Properties({ r }: { r: ExploreResult }) {
  return (
    <table class="verdict-table">
      <thead>
        <tr>
          <th>property</th>
          <th>kind</th>
          <th>verdict</th>
        </tr>
      </thead>
      <tbody>
        {r.properties.map((p) => (
          <tr key={p.name} class={p.status}>
            <td>{p.name}</td>
            <td>{p.kind}</td>
            <td class="status">
              {p.status}
              {p.note && <span class="note"> ({p.note})</span>}
              {p.vacuous && <span class="note"> (vacuous: its premise is never reached)</span>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Coverage({ r }: { r: ExploreResult }) {
  const c = r.coverage;
  return (
    <div class="coverage">
      <p>
        coverage:{' '}
        {c.neverFired.length === 0
          ? `all ${c.transitions} transitions fired`
          : `${c.neverFired.length} of ${c.transitions} transitions never fired`}
      </p>
      {c.neverFired.length > 0 && (
        <ul>
          {c.neverFired.map((t) => (
            <li key={t}>
              <code>{t}</code>
              {c.unreachable[t] ? (
                <span class="note"> (known: {c.unreachable[t]})</span>
              ) : (
                <b class="unexpected"> not listed as unreachable</b>
              )}
            </li>
          ))}
        </ul>
      )}
      {c.staleUnreachable.map((t) => (
        <p key={t} class="unexpected">
          listed as unreachable, wrongly: {t}
        </p>
      ))}
      {c.neverEnabled.length > 0 && <p>offered but never enabled: {c.neverEnabled.join(', ')}</p>}
    </div>
  );
}

function Counterexample({ v, r, actors }: { v: Violation; r: ExploreResult; actors: readonly string[] }) {
  const lanes = actors.filter((a) => v.trace.some((s) => s.actor.split('+').includes(a)));
  return (
    <div class="counterexample" data-property={v.property}>
      <h3>{describeViolation(v)}</h3>
      {v.trace.length > 0 && (
        <SwimLanes actors={lanes} steps={stepViews(v.trace)} cycleStart={v.cycleStart} />
      )}
      {v.waiting && v.waiting.length > 0 && (
        <div class="waits">
          <p>{v.kind === 'deadlock' ? 'blocked at the end:' : 'still running at the end:'}</p>
          <ul>
            {v.waiting.map((w) => (
              <li key={w.actor}>
                <b>{w.actor}</b> <code>{w.for}</code>
              </li>
            ))}
          </ul>
        </div>
      )}
      {v.trail && (
        <p>
          trail: <code>{v.trail}</code> (replay it: <code>vfio-mc replay {v.trail}</code>)
        </p>
      )}
      {v.trace.length > 0 && (
        <pre class="mermaid">{formatMermaid(v, actors, mermaidTitle(v, r.model, r.variant))}</pre>
      )}
    </div>
  );
}

function Run({ run }: { run: ReportRun }) {
  const r = run.result;
  return (
    <section class="run" id={anchor(r)}>
      <h2>
        {r.model} / {r.variant}
      </h2>
      {run.asExpected === false && (
        <div class="problem">
          not as the variant declares:
          <ul>
            {(run.why ?? '').split('; ').map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      )}
      <Figures r={r} />
      <Properties r={r} />
      <Coverage r={r} />
      {r.violations.map((v) => (
        <Counterexample key={v.property} v={v} r={r} actors={run.actors} />
      ))}
    </section>
  );
}

function Report({ input }: { input: ReportInput }) {
  return (
    <div class="report">
      <header>
        <span class="brand">vfio-mc {input.version}</span>
        <code>{input.command}</code>
        <span class="description">
          {new Date().toISOString()}, node {process.version}
        </span>
      </header>
      <h2>Verdicts</h2>
      <VerdictTable runs={input.runs} />
      {input.runs.map((run) => (
        <Run key={anchor(run.result)} run={run} />
      ))}
    </div>
  );
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:";

export function htmlReport(input: ReportInput): string {
  const diagrams = input.runs.some((r) => r.result.violations.some((v) => v.trace.length > 0));
  const title =
    input.runs.length === 1 ? `${input.runs[0].result.model} / ${input.runs[0].result.variant}` : 'verdicts';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    `<title>vfio-mc report: ${escape(title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    renderToString(<Report input={input} />),
    ...(diagrams
      ? [
          `<script>${mermaidScript()}</script>`,
          "<script>mermaid.initialize({ startOnLoad: true, securityLevel: 'strict', theme: 'neutral' });</script>",
        ]
      : []),
    '</body></html>',
    '',
  ].join('\n');
}
