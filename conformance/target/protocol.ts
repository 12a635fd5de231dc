// The shim's line protocol (conformance/shim/vfio-mc-shim.c, top comment):
//   request  "<seq> <op> key=value ..."            values percent-encoded (%20 %25 %3D %0A)
//   reply    "<seq> ret=<n> errno=<NAME|0> key=value ..."
//   refusal  "<seq> proto_error=<message>"          the shim made no syscall
//   hello    "0 hello pid=<pid> port=<N> fds=<a,b|->"

export type ArgValue = string | number | bigint | boolean | readonly (number | string)[];
export type Args = Record<string, ArgValue | undefined>;
export type OutValue = number | bigint | string | number[];
export type Outputs = Record<string, OutValue>;

export type ShimLine =
  | { kind: 'reply'; seq: number; ret: number; errno: string; out: Outputs }
  | { kind: 'proto_error'; seq: number; message: string }
  | { kind: 'hello'; pid: number; port: number; fds: number[]; out: Outputs };

const KEY = /^[a-z_][a-z0-9_]*$/;
const OP = /^[a-z_][a-z0-9_]*$/;

function encodeValue(key: string, v: ArgValue): string {
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`argument ${key}=${v} is not an integer`);
    return String(v);
  }
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map((x) => encodeValue(key, x)).join(',');
  const s = String(v);
  if (s.length === 0) throw new Error(`argument ${key} is empty`);
  return s.replace(/[%=\s]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

export function encodeRequest(seq: number, op: string, args: Args): string {
  if (!OP.test(op)) throw new Error(`bad op name ${JSON.stringify(op)}`);
  const parts = [String(seq), op];
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (!KEY.test(k)) throw new Error(`bad argument name ${JSON.stringify(k)} for ${op}`);
    parts.push(`${k}=${encodeValue(k, v)}`);
  }
  return parts.join(' ');
}

function decodeValue(key: string, raw: string): OutValue {
  const s = raw.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  if (key === 'fds') return s === '-' ? [] : s.split(',').map(Number);
  if (/^-?\d+$/.test(s) || /^0x[0-9a-f]+$/i.test(s)) {
    const big = BigInt(s);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(big)
      : big;
  }
  return s;
}

function parsePairs(tokens: string[]): Outputs {
  const out: Outputs = {};
  for (const t of tokens) {
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    const key = t.slice(0, eq);
    out[key] = decodeValue(key, t.slice(eq + 1));
  }
  return out;
}

export function parseShimLine(line: string): ShimLine | undefined {
  const tokens = line.trim().split(' ');
  const seq = Number(tokens[0]);
  if (!Number.isInteger(seq) || tokens.length < 2) return undefined;
  if (tokens[1] === 'hello') {
    const out = parsePairs(tokens.slice(2));
    return {
      kind: 'hello',
      pid: Number(out.pid),
      port: Number(out.port),
      fds: Array.isArray(out.fds) ? out.fds : [],
      out,
    };
  }
  if (tokens[1].startsWith('proto_error=')) {
    const message = String(decodeValue('message', tokens.slice(1).join(' ').slice('proto_error='.length)));
    return { kind: 'proto_error', seq, message };
  }
  const out = parsePairs(tokens.slice(1));
  const { ret, errno, ...rest } = out;
  if (typeof ret !== 'number' || errno === undefined) return undefined;
  return { kind: 'reply', seq, ret, errno: String(errno), out: rest };
}
