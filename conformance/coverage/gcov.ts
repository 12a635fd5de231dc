/**
 * Counter values → lines and branches, by gcc's own gcov (`gcov --json-format --stdout
 * --branch-probabilities`, gcc 12): each object's .gcda is written with the values given, beside a
 * link to the build's .gcno, and gcov solves the arcs. Functions come from universal-ctags
 * (start and end line of every function definition of the source file), because an inlined
 * static function has no gcov function record of its own while its lines have counts.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runSync } from '../run.ts';
import { toBuffer, withCounters } from './gcda.ts';

export interface LineHits {
  count: number;
  /** Each branch's count, in gcov's order (the same .gcno gives the same order). */
  branches: number[];
}

/** Source file (relative to the kernel tree) → line number → hits. */
export type SourceHits = Map<string, Map<number, LineHits>>;

export interface ObjectCounters {
  /** Path relative to the build dir, without extension (drivers/vfio/vfio_main). */
  readonly object: string;
  readonly words: Uint32Array;
  readonly slots: Uint32Array;
  readonly values: Float64Array;
}

interface GcovJson {
  files: { file: string; lines: { line_number: number; count: number; branches: { count: number }[] }[] }[];
}

/** Runs gcov over the objects; keeps each object's own source file (headers it inlines are dropped). */
export function gcovHits(
  buildDir: string,
  sourceDir: string,
  objects: readonly ObjectCounters[],
): SourceHits {
  const out: SourceHits = new Map();
  if (objects.length === 0) return out;
  const tmp = mkdtempSync(join(tmpdir(), 'vfio-mc-gcov-'));
  try {
    const gcdas: string[] = [];
    for (const o of objects) {
      const gcno = join(buildDir, `${o.object}.gcno`);
      if (!existsSync(gcno)) throw new Error(`${gcno} is missing: is ${buildDir} the coverage build?`);
      mkdirSync(join(tmp, dirname(o.object)), { recursive: true });
      writeFileSync(join(tmp, `${o.object}.gcda`), toBuffer(withCounters(o.words, o.slots, o.values)));
      symlinkSync(gcno, join(tmp, `${o.object}.gcno`));
      gcdas.push(`${o.object}.gcda`);
    }
    const text = runSync('gcov', ['--json-format', '--stdout', '--branch-probabilities', ...gcdas], {
      cwd: tmp,
    });
    const own = new Set(objects.map((o) => `${o.object}.c`));
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      const doc = JSON.parse(line) as GcovJson;
      for (const f of doc.files) {
        const rel = f.file.startsWith(`${sourceDir}/`) ? f.file.slice(sourceDir.length + 1) : f.file;
        if (!own.has(rel)) continue;
        let lines = out.get(rel);
        if (!lines) out.set(rel, (lines = new Map()));
        for (const l of f.lines) {
          const old = lines.get(l.line_number);
          const branches = l.branches.map((b) => b.count);
          if (old) {
            old.count += l.count;
            old.branches.push(...branches);
          } else lines.set(l.line_number, { count: l.count, branches });
        }
      }
    }
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface SourceFunction {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

const functionCache = new Map<string, SourceFunction[]>();

/** Every function definition of a C file, by universal-ctags, in line order. */
export function sourceFunctions(sourceDir: string, file: string): SourceFunction[] {
  const key = join(sourceDir, file);
  const cached = functionCache.get(key);
  if (cached) return cached;
  const text = runSync('ctags', ['--output-format=json', '--fields=+ne', '--kinds-C=f', '-o', '-', file], {
    cwd: sourceDir,
  });
  const fns = text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { name: string; line: number; end?: number; kind: string })
    .filter((t) => t.kind === 'function' && t.end !== undefined)
    .map((t) => ({ name: t.name, start: t.line, end: t.end! }))
    .sort((a, b) => a.start - b.start);
  functionCache.set(key, fns);
  return fns;
}

/** The functions that have a line with a count in the hits. */
export function reachedFunctions(
  fns: readonly SourceFunction[],
  lines: Map<number, LineHits> | undefined,
): string[] {
  if (!lines) return [];
  return fns
    .filter((f) => {
      for (let l = f.start; l <= f.end; l++) if ((lines.get(l)?.count ?? 0) > 0) return true;
      return false;
    })
    .map((f) => f.name);
}
