/**
 * The model a server serves: loaded once at start (a registered id or a
 * model file). A model that fails to load is kept as its error, which every
 * page then shows. Variants and their diagrams are made on first use, per
 * parameter values, and kept.
 */
import { ModelError, type Model, parseParamAssignments, type ResolvedVariant } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import { actorNodes } from '../../explorer/engine-reference.ts';
import type { Diagram, ModelInfo } from '../shared/api.ts';
import { machineDiagrams } from './diagram.ts';

export class Session {
  private readonly diagrams = new Map<string, Promise<Diagram[]>>();

  private constructor(
    readonly target: string,
    private readonly model: Model | undefined,
    readonly loadError: string | undefined,
  ) {}

  static async load(target: string): Promise<Session> {
    try {
      return new Session(target, await findModel(target), undefined);
    } catch (e) {
      if (!(e instanceof ModelError)) throw e;
      return new Session(target, undefined, e.message);
    }
  }

  get id(): string | undefined {
    return this.model?.id;
  }

  get defaultVariant(): string | undefined {
    return this.model?.defaultVariant;
  }

  /** The model, or a ModelError saying why it could not be loaded. */
  private loaded(): Model {
    if (!this.model) throw new ModelError(`${this.target} does not load: ${this.loadError}`);
    return this.model;
  }

  /** A variant at `--set`-style parameters; a ModelError naming what is wrong. */
  variant(name: string, set = ''): ResolvedVariant {
    const model = this.loaded();
    if (!model.variantNames.includes(name)) {
      throw new ModelError(
        `model '${model.id}' has no variant '${name}' (variants: ${model.variantNames.join(', ')})`,
      );
    }
    return model.variant(name, parseParamAssignments(set));
  }

  async info(name: string, set = ''): Promise<ModelInfo> {
    const model = this.loaded();
    const v = this.variant(name, set);
    const key = `${name}|${set}`;
    let diagrams = this.diagrams.get(key);
    if (!diagrams) this.diagrams.set(key, (diagrams = machineDiagrams(v.machine)));
    return {
      id: model.id,
      description: model.description,
      variants: model.variantNames.map((n) => ({ name: n, description: model.variant(n).description })),
      defaultVariant: model.defaultVariant,
      params: model.params,
      variant: name,
      set,
      actors: actorNodes(v.machine).map((a) => a.name),
      temporal: Object.entries(v.properties).map(([p, t]) => ({ name: p, kind: t.kind })),
      diagrams: await diagrams,
    };
  }
}
