/**
 * Each actor's state diagram, drawn from the machine itself: its state nodes
 * and its transitions, laid out by ELK's layered algorithm (elkjs, the
 * Eclipse Layout Kernel). Transitions between the same two states share one
 * edge whose label lists them, one line each, so every line can be marked
 * fired or never fired on its own; a transition without a target (it stays
 * where it is) is a loop on its state.
 */
import elkModule, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk.bundled.js';
import type { AnyStateMachine, StateNode } from 'xstate';
import { actorNodes } from '../../explorer/engine-reference.ts';
import { transitionId, transitionName } from '../../explorer/engine.ts';
import type { Diagram, DiagramEdge, DiagramNode } from '../shared/api.ts';

/** The page draws labels in a monospace font of this size: widths follow from the character count. */
const CHAR = 7.3;
const LINE = 15;
const NODE_H = 30;
const PAD = 12;

// A CommonJS module: its export is the constructor, which the typings call `default`.
const ELK = ((elkModule as any).default ?? elkModule) as typeof elkModule.default;
const elk = new ELK();

const LAYOUT = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.layered.spacing.nodeNodeBetweenLayers': '36',
  'elk.spacing.nodeNode': '28',
  'elk.spacing.edgeLabel': '4',
  'elk.spacing.edgeEdge': '12',
  'elk.layered.spacing.edgeNodeBetweenLayers': '16',
  'elk.edgeRouting': 'ORTHOGONAL',
  'elk.padding': `[top=${PAD},left=${PAD},bottom=${PAD},right=${PAD}]`,
};

interface Line {
  readonly name: string;
  readonly label: string;
}

type AnyNode = StateNode<any, any>;

/** A state node's id as transition names use it: without the machine's id. */
const idOf = (node: AnyNode, machine: AnyStateMachine) => transitionName(node.id, machine.id);

/** The ELK graph of one actor: nested states as nested nodes, parallel transitions merged. */
function elkGraph(machine: AnyStateMachine, actor: AnyNode, actorId: string) {
  const edges = new Map<string, { source: string; target: string; lines: Line[] }>();
  const kinds = new Map<string, DiagramNode['kind']>();
  const labels = new Map<string, string>();
  const node = (n: AnyNode): ElkNode => {
    const id = idOf(n, machine);
    kinds.set(id, n.type === 'final' ? 'final' : 'state');
    labels.set(id, n.key);
    for (const [event, defs] of n.transitions) {
      defs.forEach((def: any, i: number) => {
        const targets: AnyNode[] = def.target?.length ? def.target : [n];
        for (const t of targets) {
          const target = idOf(t, machine);
          const key = `${id}->${target}`;
          const e = edges.get(key) ?? { source: id, target, lines: [] };
          e.lines.push({
            name: transitionName(transitionId(n.id, event, i), machine.id),
            label: defs.length > 1 ? `${event}[${i}]` : event,
          });
          edges.set(key, e);
        }
      });
    }
    const children = Object.values(n.states as Record<string, AnyNode>).map(node);
    const width = Math.max(60, n.key.length * CHAR + 2 * PAD);
    return children.length
      ? { id, children, labels: [{ text: n.key, width, height: LINE }], layoutOptions: LAYOUT }
      : { id, width, height: NODE_H };
  };
  const states = Object.values(actor.states as Record<string, AnyNode>).map(node);
  const initialId = `${actorId}__initial`;
  kinds.set(initialId, 'initial');
  labels.set(initialId, '');
  const initial = (actor as any).initial?.target?.[0] as AnyNode | undefined;
  const elkEdges: ElkExtendedEdge[] = [...edges.entries()].map(([key, e]) => ({
    id: key,
    sources: [e.source],
    targets: [e.target],
    labels: [
      {
        id: `${key}#label`,
        text: e.lines.map((l) => l.label).join('\n'),
        width: Math.max(...e.lines.map((l) => l.label.length)) * CHAR,
        height: e.lines.length * LINE,
      },
    ],
  }));
  if (initial)
    elkEdges.push({ id: `${initialId}->`, sources: [initialId], targets: [idOf(initial, machine)] });
  const graph: ElkNode = {
    id: `${actorId}__root`,
    layoutOptions: LAYOUT,
    children: [{ id: initialId, width: 12, height: 12 }, ...states],
    edges: elkEdges,
  };
  return { graph, edges, kinds, labels };
}

/** Flatten ELK's nested, parent-relative coordinates into absolute ones. */
function flatten(
  n: ElkNode,
  dx: number,
  dy: number,
  out: { id: string; x: number; y: number; w: number; h: number }[],
) {
  for (const c of n.children ?? []) {
    const x = dx + (c.x ?? 0);
    const y = dy + (c.y ?? 0);
    out.push({ id: c.id, x, y, w: c.width ?? 0, h: c.height ?? 0 });
    flatten(c, x, y, out);
  }
}

/** Edges' coordinates are relative to their container (ELK's `container` property). */
function offsets(n: ElkNode, dx: number, dy: number, out: Map<string, { x: number; y: number }>) {
  out.set(n.id, { x: dx, y: dy });
  for (const c of n.children ?? []) offsets(c, dx + (c.x ?? 0), dy + (c.y ?? 0), out);
}

function allEdges(n: ElkNode): ElkExtendedEdge[] {
  return [...(n.edges ?? []), ...(n.children ?? []).flatMap(allEdges)];
}

export async function actorDiagram(machine: AnyStateMachine, actor: AnyNode, name: string): Promise<Diagram> {
  const actorId = machine.root.type === 'parallel' ? `${name}.` : '';
  const { graph, edges, kinds, labels } = elkGraph(machine, actor, actorId);
  const laid = await elk.layout(graph);
  const boxes: { id: string; x: number; y: number; w: number; h: number }[] = [];
  flatten(laid, 0, 0, boxes);
  const origin = new Map<string, { x: number; y: number }>();
  offsets(laid, 0, 0, origin);
  const nodes: DiagramNode[] = boxes.map((b) => ({
    id: b.id,
    label: labels.get(b.id) ?? b.id,
    kind: kinds.get(b.id) ?? 'state',
    x: b.x,
    y: b.y,
    width: b.w,
    height: b.h,
  }));
  const drawn: DiagramEdge[] = allEdges(laid).map((e) => {
    const o = origin.get((e as any).container ?? laid.id) ?? { x: 0, y: 0 };
    const sec = e.sections?.[0];
    const pts = sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint] : [];
    const label = e.labels?.[0];
    const lines = edges.get(e.id)?.lines ?? [];
    return {
      id: e.id,
      source: e.sources[0],
      target: e.targets[0],
      points: pts.map((p) => ({ x: p.x + o.x, y: p.y + o.y })),
      transitions: lines.map((l, k) => ({
        ...l,
        x: (label?.x ?? 0) + o.x,
        y: (label?.y ?? 0) + o.y + k * LINE,
      })),
    };
  });
  return { actor: name, width: laid.width ?? 0, height: laid.height ?? 0, nodes, edges: drawn };
}

/** Every actor's diagram, in the machine's actor order. */
export function machineDiagrams(machine: AnyStateMachine): Promise<Diagram[]> {
  return Promise.all(actorNodes(machine).map((a) => actorDiagram(machine, a.node, a.name)));
}
