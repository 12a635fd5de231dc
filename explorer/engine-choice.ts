/**
 * Which engine a search runs on, with which reductions laid over it, and which
 * properties it judges: shared by explore() and by the workers, walks and
 * swarm shards that build the same engine in their own thread or process
 * (so that none of them imports explore.ts, which imports them).
 */
import type { AnyEngine } from './engine.ts';
import { createCompiledEngine, Unsupported } from './engine-compiled.ts';
import { createReferenceEngine } from './engine-reference.ts';
import { ModelError, type ResolvedVariant } from './model.ts';
import { checkedEngine } from './model-checks.ts';
import type { PropertyVerdict } from './result.ts';
import { type SymmetryMode, withSymmetry } from './symmetry.ts';
import { type ViewMode, withView } from './view.ts';

/** `--engine`: the compiled engine where the machine allows it (auto), or one of the two. */
export type EngineChoice = 'auto' | 'compiled' | 'reference';

export function chooseEngine(
  variant: ResolvedVariant,
  which: EngineChoice,
  check = true,
  symmetry: SymmetryMode = false,
  view: ViewMode = false,
): {
  engine: AnyEngine;
  note?: string;
} {
  const chosen = pickEngine(variant, which);
  return { ...chosen, engine: wrapped(chosen.engine, variant, check, symmetry, view) };
}

/** An engine with the reductions and checking mode laid over it. */
export function wrapped(
  engine: AnyEngine,
  variant: ResolvedVariant,
  check: boolean,
  symmetry: SymmetryMode,
  view: ViewMode,
  por?: (inner: AnyEngine) => AnyEngine,
): AnyEngine {
  if (symmetry && variant.symmetry === undefined) {
    throw new ModelError(`--symmetry: model '${variant.modelId}' declares no interchangeable ids (symmetry)`);
  }
  const viewed = view ? withView(engine, variant, view) : engine;
  const inner = symmetry ? withSymmetry(viewed, variant, symmetry) : viewed;
  const reduced = por ? por(inner) : inner;
  return check ? checkedEngine(reduced, variant.machine.id) : reduced;
}

export function pickEngine(
  variant: ResolvedVariant,
  which: EngineChoice,
): {
  engine: AnyEngine;
  note?: string;
} {
  if (which === 'reference') return { engine: createReferenceEngine(variant.machine) };
  try {
    return { engine: createCompiledEngine(variant.machine) };
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e;
    const note = `compiled engine does not support ${e.message}; using xstate's transition()`;
    if (which === 'compiled') throw new ModelError(`model '${variant.modelId}': ${note}`);
    return { engine: createReferenceEngine(variant.machine), note };
  }
}

/**
 * The variant as the search judges it, and the properties it does not judge:
 * under symmetry or partial-order reduction, temporal properties other than
 * `sometimes` (as in TLC; the ample sets here keep reachability, not paths).
 */
export function judged(
  variant: ResolvedVariant,
  cfg: { readonly symmetry: SymmetryMode; readonly por?: boolean },
): { variant: ResolvedVariant; skipped: [string, PropertyVerdict['kind']][] } {
  if (!cfg.symmetry && !cfg.por) return { variant, skipped: [] };
  const kept = Object.entries(variant.properties).filter(([, p]) => p.kind === 'sometimes');
  const skipped = Object.entries(variant.properties)
    .filter(([, p]) => p.kind !== 'sometimes')
    .map(([name, p]) => [name, p.kind] as [string, PropertyVerdict['kind']]);
  return { variant: { ...variant, properties: Object.fromEntries(kept) }, skipped };
}
