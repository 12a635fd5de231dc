/**
 * The models' kernel citations, and where they sit.
 *
 * A citation is a kernel function named in a spec page or a machine comment: `T1:vfio_dma_do_unmap`
 * (the abbreviations of UAPI-FACTS and the spec pages), `pages.c:iopt_area_fill_domains` or
 * `drivers/vfio/vfio_iommu_type1.c:vfio_dma_do_unmap`, or a bare `vfio_pin_pages_remote` that is
 * the name of a function of a profiled file (resolved to the files that define it).
 *
 * Per transition (by event type): the comments in the machine's handler of that event (the
 * property `VmmMapDma: ...` of a state's `on`, with its leading comment) and in the declarations
 * it refers to, followed through the model's own modules (machines/**) up to DEPTH references
 * away: the step function's doc comment, the kernel helper's, and so on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type * as TS from 'typescript';

/** UAPI-FACTS's path abbreviations, and those the spec pages add (spec/bar-mmap.md). */
export const ABBREVIATIONS: Readonly<Record<string, string>> = {
  T1: 'drivers/vfio/vfio_iommu_type1.c',
  VCONT: 'drivers/vfio/container.c',
  VGRP: 'drivers/vfio/group.c',
  VMAIN: 'drivers/vfio/vfio_main.c',
  VIFD: 'drivers/vfio/iommufd.c',
  IOAS: 'drivers/iommu/iommufd/ioas.c',
  IOPT: 'drivers/iommu/iommufd/io_pagetable.c',
  PAGES: 'drivers/iommu/iommufd/pages.c',
  DEV: 'drivers/iommu/iommufd/device.c',
  MAIN: 'drivers/iommu/iommufd/main.c',
  ST: 'drivers/iommu/iommufd/selftest.c',
  COMPAT: 'drivers/iommu/iommufd/vfio_compat.c',
  VPCI: 'drivers/vfio/pci/vfio_pci_core.c',
  VCFG: 'drivers/vfio/pci/vfio_pci_config.c',
  VRDWR: 'drivers/vfio/pci/vfio_pci_rdwr.c',
  VMA: 'mm/vma.c',
  MEM: 'mm/memory.c',
  RWSEM: 'kernel/locking/rwsem.c',
};

export interface Citation {
  readonly file: string;
  readonly fn: string;
}

export const citationKey = (c: Citation) => `${c.file}:${c.fn}`;

/** Which profiled files define a function name (from ctags). */
export type FunctionIndex = ReadonlyMap<string, readonly string[]>;

/** Citations in a text (a comment, a spec page), resolved against the profiled files' functions. */
export function citationsIn(text: string, index: FunctionIndex): Citation[] {
  const out = new Map<string, Citation>();
  const add = (file: string, fn: string) => out.set(`${file}:${fn}`, { file, fn });
  const byBase = (base: string, fn: string) =>
    (index.get(fn) ?? []).filter((f) => f === base || f.endsWith(`/${base}`));
  const qualified = new Set<number>();
  // ABBR:fn and path/file.c:fn
  const re = /\b([A-Z][A-Z0-9]*|(?:[\w.-]+\/)*[\w-]+\.c):([a-z_][a-z0-9_]*)/g;
  for (const m of text.matchAll(re)) {
    const [, where, fn] = m;
    const file = ABBREVIATIONS[where] ?? (where.endsWith('.c') ? where : undefined);
    if (!file) continue;
    const files =
      file.includes('/') && index.get(fn)?.includes(file) ? [file] : byBase(file.split('/').pop()!, fn);
    for (const f of files.length ? files : [file]) add(f, fn);
    qualified.add(m.index! + m[0].length - fn.length);
  }
  // bare names of profiled functions
  for (const m of text.matchAll(/\b[a-z_][a-z0-9_]{3,}\b/g)) {
    if (qualified.has(m.index!)) continue;
    const files = index.get(m[0]);
    if (files) for (const f of files) add(f, m[0]);
  }
  return [...out.values()];
}

const DEPTH = 2;
const COMMENT = /\/\/[^\n]*|\/\*[\s\S]*?\*\//g;

type Decl = { node: TS.Node; file: string };

/** A parsed module of machines/: its top-level declarations by name and its imports. */
interface Module {
  readonly sf: TS.SourceFile;
  readonly decls: Map<string, TS.Node>;
  readonly imports: Map<string, string>;
}

/**
 * The citations of each event type handled in the machine file and the modules it imports
 * from the same tree.
 */
export async function transitionCitations(
  machineFile: string,
  eventTypes: readonly string[],
  index: FunctionIndex,
): Promise<Map<string, Citation[]>> {
  const ts = (await import('typescript')).default;
  const root = dirname(machineFile);
  const modules = new Map<string, Module>();
  const load = (file: string): Module => {
    let m = modules.get(file);
    if (m) return m;
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const decls = new Map<string, TS.Node>();
    const imports = new Map<string, string>();
    for (const st of sf.statements) {
      if (ts.isFunctionDeclaration(st) && st.name) decls.set(st.name.text, st);
      else if (ts.isVariableStatement(st)) {
        for (const d of st.declarationList.declarations)
          if (ts.isIdentifier(d.name)) decls.set(d.name.text, st);
      } else if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
        const target = resolve(dirname(file), st.moduleSpecifier.text);
        const inTree = target.startsWith(resolve(root)) && existsSync(target);
        const named = st.importClause?.namedBindings;
        if (inTree && named && ts.isNamedImports(named))
          for (const el of named.elements) imports.set(el.name.text, target);
      }
    }
    m = { sf, decls, imports };
    modules.set(file, m);
    return m;
  };
  /** A name's declaration: in a block around the reference (a step made inside the actor's builder), at top level, or imported. */
  const declaredIn = (statements: readonly TS.Statement[], name: string): TS.Node | undefined =>
    statements.find(
      (st) =>
        (ts.isFunctionDeclaration(st) && st.name?.text === name) ||
        (ts.isVariableStatement(st) &&
          st.declarationList.declarations.some((d) => ts.isIdentifier(d.name) && d.name.text === name)),
    );
  const declOf = (file: string, name: string, at: TS.Node): Decl | undefined => {
    for (let p: TS.Node | undefined = at.parent; p && !ts.isSourceFile(p); p = p.parent) {
      if (!ts.isBlock(p)) continue;
      const local = declaredIn(p.statements, name);
      if (local) return { node: local, file };
    }
    const m = load(file);
    const top = m.decls.get(name);
    if (top) return { node: top, file };
    const from = m.imports.get(name);
    if (from) {
      const d = load(from).decls.get(name);
      if (d) return { node: d, file: from };
    }
    return undefined;
  };
  const citationsOfNode = (start: Decl): Citation[] => {
    const found = new Map<string, Citation>();
    const seen = new Set<TS.Node>();
    let frontier: Decl[] = [start];
    for (let depth = 0; depth <= DEPTH && frontier.length; depth++) {
      const next: Decl[] = [];
      for (const d of frontier) {
        if (seen.has(d.node)) continue;
        seen.add(d.node);
        for (const c of d.node.getFullText().match(COMMENT) ?? [])
          for (const cit of citationsIn(c, index)) found.set(citationKey(cit), cit);
        const visit = (n: TS.Node) => {
          if (ts.isIdentifier(n)) {
            const target = declOf(d.file, n.text, n);
            if (target && !seen.has(target.node)) next.push(target);
          }
          n.forEachChild(visit);
        };
        d.node.forEachChild(visit);
      }
      frontier = next;
    }
    return [...found.values()];
  };
  const out = new Map<string, Citation[]>(eventTypes.map((e) => [e, []]));
  /** The event types a name of a handler stands for: a literal, or a pattern from its literal parts. */
  const literalParts = (e: TS.Expression): string[] | undefined => {
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return [e.text];
    if (ts.isTemplateExpression(e)) return ['', e.head.text, ...e.templateSpans.map((sp) => sp.literal.text)];
    // ev(u, 'Mmap'): a helper that puts an actor's prefix before the step's name
    if (ts.isCallExpression(e)) {
      const lits = e.arguments.filter((a) => ts.isStringLiteral(a)).map((a) => (a as TS.StringLiteral).text);
      return lits.length === 1 ? ['', lits[0]] : undefined;
    }
    return undefined;
  };
  const handlerName = (n: TS.Node): RegExp | string | undefined => {
    if (ts.isPropertyAssignment(n)) {
      const nm = n.name;
      if (ts.isIdentifier(nm) || ts.isStringLiteral(nm)) return nm.text;
      if (!ts.isComputedPropertyName(nm)) return undefined;
      const parts = literalParts(nm.expression);
      if (!parts) return undefined;
      if (parts.length === 1) return parts[0];
      return new RegExp(`^${parts.map((q) => q.replace(/[^\w]/g, '')).join('\\w*')}$`);
    }
    // row('vmm', 'start', 'VmmFork', vmmFork, ...): a table row naming its event
    if (ts.isCallExpression(n)) {
      const lits = n.arguments.filter((a) => ts.isStringLiteral(a)).map((a) => (a as TS.StringLiteral).text);
      const named = lits.filter((l) => eventTypes.includes(l));
      return named.length === 1 ? named[0] : undefined;
    }
    return undefined;
  };
  const scan = (file: string) => {
    const m = load(file);
    const visit = (n: TS.Node) => {
      const name = handlerName(n);
      if (name !== undefined)
        for (const e of eventTypes) {
          if (typeof name === 'string' ? name !== e : !name.test(e)) continue;
          const all = new Map((out.get(e) ?? []).map((c) => [citationKey(c), c]));
          for (const c of citationsOfNode({ node: n, file })) all.set(citationKey(c), c);
          out.set(e, [...all.values()]);
        }
      n.forEachChild(visit);
    };
    m.sf.forEachChild(visit);
  };
  // the machine file and every module of the tree it imports, transitively
  const files = [resolve(machineFile)];
  for (let i = 0; i < files.length; i++) {
    scan(files[i]);
    for (const f of new Set(load(files[i]).imports.values())) if (!files.includes(f)) files.push(f);
  }
  return out;
}

/** The citations of a spec page. */
export function specCitations(specFile: string, index: FunctionIndex): Citation[] {
  return existsSync(specFile) ? citationsIn(readFileSync(specFile, 'utf8'), index) : [];
}

export const machineFileOf = (machinesDir: string, model: string) => join(machinesDir, `${model}.ts`);
