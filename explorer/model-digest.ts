/**
 * What a model is made of, as file digests: the model file and every file it
 * imports, transitively, that is not the tool's own code. A checkpoint
 * records them and `--resume` compares (checkpoint.ts); the distributed mode
 * compares the combined digest between nodes (distributed-node.ts). Both
 * need "the same model", not "a file of the same name".
 *
 * Imports are found by reading the source: `import ... from '...'`,
 * `export ... from '...'`, `import '...'` and `import('...')` with a literal
 * specifier. A relative specifier is resolved as the tool's loaders do
 * (the file, else with .ts/.mts/.js/.mjs, else its index); `vfio-mc/kernel/X`
 * is the tool's shared kernel model machines/kernel/X.ts, which is model code.
 * Not followed: other packages (xstate, fast-check...: the tool's own copies,
 * covered by the tool version) and the tool's own code (explorer/, index.ts:
 * likewise). An import computed at run time cannot be seen; a model that
 * builds a specifier from a string is bound to its literal imports only.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOOL_CODE = [join(ROOT, 'explorer'), join(ROOT, 'index.ts'), join(ROOT, 'node_modules')];

export const TOOL_VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** A model's files: path (relative to the model file's directory, '/'-separated) -> sha256 (hex, 16 digits). */
export type ModelFiles = Readonly<Record<string, string>>;

// Comments are removed first so that an import in a comment is not followed.
const COMMENTS = /\/\*[\s\S]*?\*\/|(^|[^:\\])\/\/.*$/gm;
const SPECIFIERS =
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

function digestOf(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function isToolCode(file: string): boolean {
  return TOOL_CODE.some((t) => file === t || file.startsWith(`${t}/`));
}

function resolveSpecifier(spec: string, from: string): string | undefined {
  let base: string;
  if (spec.startsWith('.') || spec.startsWith('/')) base = resolve(dirname(from), spec);
  else if (spec.startsWith('vfio-mc/kernel/')) base = join(ROOT, 'machines', 'kernel', spec.slice(15));
  else return undefined; // another package: the tool's own copy
  const candidates = [base, ...['.ts', '.mts', '.js', '.mjs'].map((e) => base + e)];
  candidates.push(...['index.ts', 'index.js'].map((i) => join(base, i)));
  // An import written with .js for a .ts file (TypeScript's convention).
  if (/\.m?js$/.test(base)) candidates.push(base.replace(/\.(m?)js$/, '.$1ts'));
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

/** The model file and the files it imports, transitively, each with its digest. */
export function modelFiles(modelFile: string): ModelFiles {
  const top = resolve(modelFile);
  const dir = dirname(top);
  const files: Record<string, string> = {};
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    files[relative(dir, file).split('\\').join('/')] = digestOf(text);
    for (const m of text.replace(COMMENTS, '$1').matchAll(SPECIFIERS)) {
      const target = resolveSpecifier(m[1] ?? m[2], file);
      if (target !== undefined && !isToolCode(target)) visit(target);
    }
  };
  visit(top);
  return files;
}

/** One digest for all of a model's files (names and contents). */
export function modelDigest(files: ModelFiles): string {
  const lines = Object.keys(files)
    .sort()
    .map((f) => `${f} ${files[f]}\n`);
  return digestOf(lines.join(''));
}

/** What changed between two recordings of a model's files, as phrases ('machines/x.ts edited'); empty if none. */
export function modelChanges(before: ModelFiles, now: ModelFiles): string[] {
  const changes: string[] = [];
  for (const f of Object.keys(before).sort()) {
    if (!(f in now)) changes.push(`${f} no longer imported (or gone)`);
    else if (now[f] !== before[f]) changes.push(`${f} edited`);
  }
  for (const f of Object.keys(now).sort()) if (!(f in before)) changes.push(`${f} newly imported`);
  return changes;
}
