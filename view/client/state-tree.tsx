/**
 * The state's context as a tree, the fields the last step changed
 * highlighted with their old value beside them; a folded branch with a
 * change inside is marked too.
 */
import type { ChangeView } from '../shared/api.ts';

const isTree = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

const child = (path: string, key: string, array: boolean) =>
  array ? `${path}[${key}]` : path ? `${path}.${key}` : key;

function scalar(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined ? '(none)' : JSON.stringify(v);
}

interface NodeProps {
  readonly name: string;
  readonly value: unknown;
  readonly path: string;
  readonly changed: ReadonlyMap<string, string>;
  readonly depth: number;
}

function Node({ name, value, path, changed, depth }: NodeProps) {
  const change = changed.get(path);
  const inside = [...changed.keys()].some((p) => p.startsWith(`${path}.`) || p.startsWith(`${path}[`));
  if (!isTree(value) || Object.keys(value).length === 0) {
    return (
      <div class={`leaf${change ? ' changed' : ''}`} data-path={path}>
        <span class="key">{name}</span>:{' '}
        <span class="val">{isTree(value) ? (Array.isArray(value) ? '[]' : '{}') : scalar(value)}</span>
        {change && <span class="was">{change}</span>}
      </div>
    );
  }
  const array = Array.isArray(value);
  const entries = Object.entries(value);
  return (
    <details open={depth < 1 || inside || change !== undefined} data-path={path}>
      <summary class={change ? 'changed' : inside ? 'has-change' : ''}>
        <span class="key">{name}</span>{' '}
        <span class="count">{array ? `[${entries.length}]` : `{${entries.length}}`}</span>
        {change && <span class="was">{change}</span>}
      </summary>
      <div class="children">
        {entries.map(([k, v]) => (
          <Node
            key={k}
            name={array ? `[${k}]` : k}
            value={v}
            path={child(path, k, array)}
            changed={changed}
            depth={depth + 1}
          />
        ))}
      </div>
    </details>
  );
}

export function StateTree({ context, changed }: { context: unknown; changed: readonly ChangeView[] }) {
  // The change reads `path: before→after`; beside the field, `before→after` says it.
  const map = new Map(changed.map((c) => [c.path, c.text.replace(`${c.path}: `, '')]));
  if (!isTree(context)) return <div class="tree">{scalar(context)}</div>;
  return (
    <div class="tree">
      {Object.entries(context).map(([k, v]) => (
        <Node key={k} name={k} value={v} path={k} changed={map} depth={0} />
      ))}
    </div>
  );
}
