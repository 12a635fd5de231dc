/**
 * Temporal properties over the explored graph. (Being written: until then
 * every temporal property is reported 'not checked', never 'holds'.)
 */
import type { SearchOutcome } from './bfs.ts';
import type { AnyEngine } from './engine.ts';
import type { ResolvedVariant } from './model.ts';
import type { PropertyVerdict } from './result.ts';

export interface TemporalFinding {
  readonly verdict: PropertyVerdict;
  readonly violation?: {
    readonly kind: 'liveness' | 'unrecoverable';
    readonly path: readonly { state: number; event: number }[];
    readonly cycleStart?: number;
  };
}

export const hasTemporal = (v: ResolvedVariant): boolean => Object.keys(v.properties).length > 0;

export function checkTemporal(v: ResolvedVariant, _engine: AnyEngine, _o: SearchOutcome): TemporalFinding[] {
  return Object.entries(v.properties).map(([name, p]) => ({
    verdict: { name, kind: p.kind, status: 'not checked', note: 'temporal checking is not implemented yet' },
  }));
}
