/**
 * An actor's state diagram, laid out on the server by ELK and drawn here:
 * the state the actor is in filled, the transitions the last step took
 * bold, and, once the explorer has run, the transitions that never fired
 * greyed (those the model knows cannot fire say why on hover).
 */
import type { Diagram as DiagramData, DiagramEdge, RunReport } from '../shared/api.ts';

export interface DiagramProps {
  readonly diagram: DiagramData;
  readonly active: readonly string[];
  readonly fired: readonly string[];
  readonly run?: RunReport;
}

function lineClass(name: string, fired: readonly string[], run?: RunReport): string {
  if (fired.includes(name)) return 'fired';
  if (run?.neverFired.includes(name)) return name in run.unreachable ? 'never known' : 'never';
  return '';
}

function lineTitle(name: string, fired: readonly string[], run?: RunReport): string {
  if (fired.includes(name)) return `${name}: taken by the last step`;
  if (!run) return `${name} (run the explorer to see whether it ever fires)`;
  if (!run.neverFired.includes(name)) return `${name}: fired in the last search`;
  const why = run.unreachable[name];
  return `${name}: never fired in the last search${why ? ` (known unreachable: ${why})` : ''}`;
}

function Edge({ e, fired, run }: { e: DiagramEdge; fired: readonly string[]; run?: RunReport }) {
  const classes = e.transitions.map((t) => lineClass(t.name, fired, run));
  const edge = classes.some((c) => c === 'fired')
    ? 'fired'
    : classes.length && classes.every((c) => c.startsWith('never'))
      ? 'never'
      : '';
  return (
    <g class={`edge ${edge}`} data-edge={e.id}>
      <polyline points={e.points.map((p) => `${p.x},${p.y}`).join(' ')} marker-end="url(#arrow)" />
      {e.transitions.map((t, k) => (
        <text key={t.name} x={t.x} y={t.y + 11} class={classes[k]} data-transition={t.name}>
          <title>{lineTitle(t.name, fired, run)}</title>
          {t.label}
        </text>
      ))}
    </g>
  );
}

export function Diagram({ diagram, active, fired, run }: DiagramProps) {
  const d = diagram;
  return (
    <figure class="diagram" data-diagram={d.actor}>
      <figcaption>{d.actor}</figcaption>
      <svg
        viewBox={`0 0 ${d.width} ${d.height}`}
        width={d.width}
        height={d.height}
        role="img"
        aria-label={`state diagram of ${d.actor}`}
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="8"
            markerHeight="8"
            markerUnits="userSpaceOnUse"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" />
          </marker>
        </defs>
        {d.edges.map((e) => (
          <Edge key={e.id} e={e} fired={fired} run={run} />
        ))}
        {d.nodes.map((n) =>
          n.kind === 'initial' ? (
            <circle
              key={n.id}
              class="initial"
              cx={n.x + n.width / 2}
              cy={n.y + n.height / 2}
              r={n.width / 2}
            />
          ) : (
            <g key={n.id} class={`node ${n.kind}${active.includes(n.id) ? ' active' : ''}`} data-node={n.id}>
              <rect x={n.x} y={n.y} width={n.width} height={n.height} rx="8" />
              {n.kind === 'final' && (
                <rect
                  class="inner"
                  x={n.x + 3}
                  y={n.y + 3}
                  width={n.width - 6}
                  height={n.height - 6}
                  rx="6"
                />
              )}
              <text x={n.x + n.width / 2} y={n.y + 19} text-anchor="middle">
                {n.label}
              </text>
            </g>
          ),
        )}
      </svg>
    </figure>
  );
}
