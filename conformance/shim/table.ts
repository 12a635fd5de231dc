// The shim's op table as the TypeScript side sees it: op names, the arguments each op takes
// (and which are required) and its numeric outputs. Read from the rows of ops[] in
// vfio-mc-shim.c, so the unit tests can check the adapters' calls without building the shim;
// tests/layout.kernel.test.ts checks this reading against the built shim's `--ops`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from '../cache.ts';

export interface ShimOp {
  name: string;
  /** argument name -> required */
  args: Map<string, boolean>;
  outputs: string[];
}

const ROW_START = /^\t\{ (?:CALL|IOCTL|IOCTL_VAL|IOCTL_PTR)\((\w+)/;

function rowOp(name: string, row: string): ShimOp {
  const args = new Map<string, boolean>();
  // in row order, as the shim lists them
  for (const m of row.matchAll(
    /\bON_FD\b|\b(IN|NAMES|OPT|FLAGS|OPT_AS)\((\w+),|\bTEXT\((\w+), [\w.]+, \w+, ([01])\)/g,
  )) {
    if (m[0] === 'ON_FD') args.set('fd', true);
    else if (m[2] !== undefined) args.set(m[2], m[1] === 'IN' || m[1] === 'NAMES');
    else args.set(m[3], m[4] === '1');
  }
  const outputs = [...row.matchAll(/\bOUT_[A-Z]+\((\w+)/g)].map((m) => m[1]);
  return { name, args, outputs };
}

/** The rows of ops[] in a shim source. */
export function shimOpsFromSource(source: string): Map<string, ShimOp> {
  const start = source.indexOf('static const struct op ops[] = {');
  const end = source.indexOf('\n};', start);
  if (start < 0 || end < 0) throw new Error('vfio-mc-shim.c: no ops[] table found');
  const ops = new Map<string, ShimOp>();
  let current: { name: string; text: string } | undefined;
  const flush = () => {
    if (current) ops.set(current.name, rowOp(current.name, current.text));
  };
  for (const line of source.slice(start, end).split('\n').slice(1)) {
    const m = ROW_START.exec(line);
    if (m) {
      flush();
      current = { name: m[1], text: line };
    } else if (current && /^\t[\t ]/.test(line)) {
      current.text += `\n${line}`;
    } else {
      flush();
      current = undefined;
    }
  }
  flush();
  return ops;
}

/** The shim's op table, from conformance/shim/vfio-mc-shim.c. */
export function shimOps(): Map<string, ShimOp> {
  return shimOpsFromSource(readFileSync(join(conformanceDir, 'shim', 'vfio-mc-shim.c'), 'utf8'));
}

/** Parses `vfio-mc-shim --ops` ("name ioctl|call arg:kind[?] ... -> out ..."). */
export function parseOpsListing(text: string): Map<string, ShimOp> {
  const ops = new Map<string, ShimOp>();
  for (const line of text.trim().split('\n')) {
    const [head, tail = ''] = line.split(' -> ');
    const [name, , ...args] = head.split(' ');
    ops.set(name, {
      name,
      args: new Map(args.map((a) => [a.slice(0, a.indexOf(':')), !a.endsWith('?')])),
      outputs: tail === '' ? [] : tail.split(' '),
    });
  }
  return ops;
}
