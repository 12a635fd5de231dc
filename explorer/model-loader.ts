/**
 * Loading a user's model file from any directory. The module-resolution
 * hooks (model-loader-hooks.mjs) make `xstate`, `vfio-mc`, `fast-check` and
 * `ts-pattern` resolve to the tool's own copies and load a .ts file outside a
 * typed package as an ES module, so a model needs no package.json and no
 * node_modules of its own. A file that cannot be loaded is a ModelError that
 * names file:line:column and shows the line, whether the failure is esbuild's
 * (a syntax or type-stripping error) or an exception while the module runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { register } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ModelError, wholeMessage } from './model.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
let registered = false;

/** Register the hooks once per process, before the first user file is imported. */
export function registerModelHooks(): void {
  if (registered) return;
  registered = true;
  register(pathToFileURL(join(ROOT, 'explorer', 'model-loader-hooks.mjs')), {
    data: { root: pathToFileURL(`${ROOT}/`).href, index: pathToFileURL(join(ROOT, 'index.ts')).href },
  });
}

/** Import a user's module by path; any failure becomes a ModelError naming where it happened. */
export async function importUserModule(path: string): Promise<{ default?: unknown }> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ModelError(`${path}: no such file`);
  registerModelHooks();
  // XState throws a machine's definition errors from deep in createMachine(): with the default
  // 10 frames the stack ends inside xstate, before the model's line that called it.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = Math.max(limit, 100);
  try {
    return await import(pathToFileURL(file).href);
  } catch (e) {
    throw new ModelError(describeLoadError(e, path, file));
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** esbuild's message: 'Transform failed with 1 error:\n/abs/file.ts:20:29: ERROR: Expected "}" ...'. */
const ESBUILD_LOCATION = /^(.+?):(\d+):(\d+): ERROR: (.*)$/m;

export function describeLoadError(e: unknown, shown: string, file: string): string {
  const err = e instanceof Error ? e : new Error(String(e));
  if (err instanceof ModelError) return `${shown}: ${err.message}`;
  const syntax = ESBUILD_LOCATION.exec(err.message);
  if (syntax) {
    const [, where, line, column0, message] = syntax;
    const column = Number(column0) + 1; // esbuild counts columns from 0, editors and V8 from 1
    return `${at(where, file, shown)}:${line}:${column}: syntax error: ${message}${excerpt(where, Number(line), column)}`;
  }
  const first = wholeMessage(err.message);
  const frame = namedIn(err.message, frameIn(err, file));
  if (frame) {
    return `${at(frame.file, file, shown)}:${frame.line}:${frame.column}: ${err.name}: ${first}${excerpt(frame.file, frame.line, frame.column)}`;
  }
  return `${shown}: cannot load the module: ${err.name === 'Error' ? '' : `${err.name}: `}${first}`;
}

/** The path as the user gave it when the error is in that file, else relative to the working directory. */
function at(where: string, file: string, shown: string): string {
  return resolve(where) === file ? shown : relative(process.cwd(), where) || where;
}

/**
 * The first stack frame in the user's code: `file`, or a file it imports (machine.ts, shared.ts,
 * at any depth; not the tool, not a dependency): where the model's own code threw while loading.
 */
function frameIn(err: Error, file: string): { file: string; line: number; column: number } | undefined {
  for (const l of (err.stack ?? '').split('\n')) {
    const m = /\((.*):(\d+):(\d+)\)$|at (.*):(\d+):(\d+)$/.exec(l.trim());
    if (!m) continue;
    const [where, line, column] = m[1] ? [m[1], m[2], m[3]] : [m[4], m[5], m[6]];
    const path = where.startsWith('file:') ? fileURLToPath(where.replace(/[?#].*$/, '')) : where;
    const users =
      path === file ||
      (path.startsWith('/') && !path.startsWith(`${ROOT}/`) && !path.includes('/node_modules/'));
    if (users) return { file: path, line: Number(line), column: Number(column) };
  }
  return undefined;
}

/**
 * XState names a missing state ("Child state 'dnoe' does not exist on 'm'") but its stack points
 * at createMachine(): when the name is quoted once in that file, that is the line to show.
 */
function namedIn<F extends { file: string; line: number; column: number }>(
  message: string,
  frame: F | undefined,
): F | undefined {
  const name = /Child state '([^']+)' does not exist/.exec(message)?.[1];
  if (!frame || !name) return frame;
  let lines: string[];
  try {
    lines = readFileSync(frame.file, 'utf8').split('\n');
  } catch {
    return frame;
  }
  const quoted = new RegExp(`(['"\`])(#[^'"\`]*\\.)?${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\1`);
  const hits = lines.flatMap((l, i) => {
    const m = quoted.exec(l);
    return m ? [{ line: i + 1, column: m.index + 1 }] : [];
  });
  return hits.length === 1 ? { ...frame, ...hits[0] } : frame;
}

/** The offending line and a caret under the column, indented under the message. */
function excerpt(file: string, line: number, column: number): string {
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8').split('\n')[line - 1];
  } catch {
    return '';
  }
  if (text === undefined) return '';
  const gutter = `  ${line} | `;
  return `\n${gutter}${text}\n${' '.repeat(gutter.length + Math.max(0, column - 1))}^`;
}
