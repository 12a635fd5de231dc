/**
 * Reads by enumeration, added to a learnt declaration. A step that rebuilds an
 * object with a spread (`{ ...c.t1, lock: null }`) enumerates it, and an
 * enumeration by model code reads every field of the object and its key set
 * (explorer/footprint.ts): a copy cannot be told from a decision on what it
 * enumerates. The declarations of machines/footprints were learnt when such
 * copies were not counted; the fields each actor's steps copy are listed
 * apart, per state node as the checked search names them, and laid over the
 * learnt declaration here, so the learnt lists stay as they were learnt.
 */
import type { Footprints } from '../../explorer/model.ts';

/** Per actor, per state node ('' for the actor's own declaration, used in nodes no `states` key matches): the extra reads. */
export type ExtraReads = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;

/** The declaration with the extra reads added to each node's reads (and to the actor's, which covers all its nodes). */
export function withReads(fp: Footprints, extra: ExtraReads): Footprints {
  const merge = (a: readonly string[] | undefined, b: readonly string[]) =>
    [...new Set([...(a ?? []), ...b])].sort();
  const actors = Object.fromEntries(
    Object.entries(fp.actors).map(([name, actor]) => {
      const more = extra[name] ?? {};
      for (const node of Object.keys(more))
        if (node !== '' && actor.states?.[node] === undefined)
          throw new Error(`withReads: footprints.actors.${name} has no state '${node}'`);
      const states = Object.fromEntries(
        Object.entries(actor.states ?? {}).map(([node, spec]) => [
          node,
          { ...spec, reads: merge(spec.reads, more[node] ?? []) },
        ]),
      );
      const all = Object.values(more).flat();
      return [name, { ...actor, reads: merge(actor.reads, all), ...(actor.states && { states }) }];
    }),
  );
  for (const name of Object.keys(extra))
    if (fp.actors[name] === undefined) throw new Error(`withReads: no actor '${name}' in the declaration`);
  return { ...fp, actors };
}
