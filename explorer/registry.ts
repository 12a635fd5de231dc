/**
 * Finding models. Every top-level file in machines/ whose default export is a
 * model is registered, so a new protocol or design variant is one new file
 * there and nothing else. A path to any other file loads a user's own model.
 */
import { readdirSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isModel, type Model, ModelError } from './model.ts';
import { importUserModule } from './model-loader.ts';

export const MACHINES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'machines');

const isModelFile = (f: string) => /\.(ts|mts|js|mjs)$/.test(f) && !/\.(test|spec|d)\.[mc]?[jt]s$/.test(f);

/** Load one model module by path; its default export must be made with defineModel(). */
export async function loadModelFile(path: string): Promise<Model> {
  const mod = await importUserModule(path);
  if (!isModel(mod.default)) {
    throw new ModelError(`${path}: the default export is not a model made with defineModel()`);
  }
  mod.default.origin ??= resolve(path);
  return mod.default;
}

/** All registered models (machines/*.ts), sorted by id. */
export async function registeredModels(dir = MACHINES_DIR): Promise<Model[]> {
  const files = readdirSync(dir)
    .filter(isModelFile)
    .sort()
    .map((f) => join(dir, f));
  const models: Model[] = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(f).href);
    if (isModel(mod.default)) {
      mod.default.origin ??= f;
      models.push(mod.default);
    }
  }
  const seen = new Set<string>();
  for (const m of models) {
    if (seen.has(m.id)) throw new ModelError(`two models in ${dir} share the id '${m.id}'`);
    seen.add(m.id);
  }
  return models.sort((a, b) => a.id.localeCompare(b.id));
}

/** Whether a command-line model argument is a file path rather than a registered id. */
export const isModelPath = (idOrPath: string): boolean => idOrPath.includes('/') || extname(idOrPath) !== '';

/** A model by registered id, or by path to a model file. */
export async function findModel(idOrPath: string): Promise<Model> {
  if (isModelPath(idOrPath)) return loadModelFile(idOrPath);
  const models = await registeredModels();
  const m = models.find((x) => x.id === idOrPath);
  if (!m) {
    throw new ModelError(`unknown model '${idOrPath}' (registered: ${models.map((x) => x.id).join(', ')})`);
  }
  return m;
}
