/**
 * `vfio-mc init <dir>`: a starting model in a directory of the user's own,
 * its spec page and a README that says how to run it. The model is
 * cli/init/model.ts, the example explorer/README.md walks through; it
 * runs as written and shows one violation. Nothing is overwritten: an
 * existing file is an error, and nothing is written at all then.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../explorer/model.ts';

const TEMPLATES = join(dirname(fileURLToPath(import.meta.url)), 'init');

/** Write the starting files into `dir` (created if missing); returns the paths written. */
export function initModelDir(dir: string): string[] {
  const files: [string, string][] = [
    ['model.ts', readFileSync(join(TEMPLATES, 'model.ts'), 'utf8')],
    ['spec.md', readFileSync(join(TEMPLATES, 'spec.md'), 'utf8')],
    ['README.md', readFileSync(join(TEMPLATES, 'README.md'), 'utf8')],
  ];
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new ModelError(`init: ${dir} is not a directory`);
  const targets = files.map(([name, text]) => [join(dir, name), text] as const);
  const taken = targets.filter(([path]) => existsSync(path)).map(([path]) => path);
  if (taken.length > 0) throw new ModelError(`init: ${taken.join(', ')} already exists; nothing was written`);
  mkdirSync(dir, { recursive: true });
  for (const [path, text] of targets) writeFileSync(path, text, { flag: 'wx' });
  return targets.map(([path]) => relative(process.cwd(), path) || path);
}
