/**
 * Canonical encoding of model data: JSON with object keys sorted, so that two
 * equal states encode to the same string whatever order their fields were
 * written in. Hand-written rather than a library because it runs once per
 * generated state (the hot path) and because it must refuse what JSON would
 * silently mangle (a Set encodes as {}, undefined disappears): a model whose
 * context holds such values would merge distinct states.
 *
 * Encodings of objects and arrays are memoised by identity. Model contexts
 * are immutable (assigns return new objects and share the unchanged parts),
 * so a successor state re-encodes only the parts an assign replaced; this
 * made the benchmark's encoding several times faster (npm run bench).
 */
import { ModelError } from './model.ts';

export function canonical(value: unknown, where = 'context'): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new ModelError(`${where} is ${value}: only finite numbers can be encoded`);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return encodeArray(value, where);
      return encodeObject(value as Record<string, unknown>, where);
    default:
      throw new ModelError(`${where} is a ${typeof value}: model state must be plain JSON data`);
  }
}

const memo = new WeakMap<object, string>();
const keyCodes = new Map<string, string>();

function encodeArray(a: readonly unknown[], where: string): string {
  const known = memo.get(a);
  if (known !== undefined) return known;
  let out = '[';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    out += canonical(a[i], `${where}[${i}]`);
  }
  out += ']';
  memo.set(a, out);
  return out;
}

function keyCode(k: string): string {
  let code = keyCodes.get(k);
  if (code === undefined) {
    code = `${JSON.stringify(k)}:`;
    keyCodes.set(k, code);
  }
  return code;
}

function sortedKeys(o: object): string[] {
  const keys = Object.keys(o);
  for (let i = 1; i < keys.length; i++) if (keys[i - 1] > keys[i]) return keys.sort();
  return keys;
}

function encodeObject(o: Record<string, unknown>, where: string): string {
  const known = memo.get(o);
  if (known !== undefined) return known;
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) {
    const kind = o.constructor?.name ?? 'object';
    throw new ModelError(
      `${where} is a ${kind}: model state must be plain JSON data (use sorted arrays for sets)`,
    );
  }
  const keys = sortedKeys(o);
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue; // same as JSON: an absent field and an undefined one are one state
    if (!first) out += ',';
    first = false;
    out += keyCode(k) + canonical(v, `${where}.${k}`);
  }
  out += '}';
  memo.set(o, out);
  return out;
}
