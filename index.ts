/** vfio-mc's public API: the model contract, the explorer and the result types. */
export { type ExploreOptions, explore } from './explorer/explore.ts';
export {
  defineModel,
  eventually,
  leadsTo,
  type Model,
  ModelError,
  type ModelSnapshot,
  type ModelSpec,
  type ResolvedVariant,
  recoverable,
  sometimes,
  type VariantSpec,
} from './explorer/model.ts';
export type { ExploreResult, TraceStep, Violation } from './explorer/result.ts';
