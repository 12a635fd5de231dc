/**
 * The page's address is the state: `/<model>/<variant>/<event>/<event>/...`,
 * the events fired from the initial state, each as the reports name it
 * (`VmmMapDma(dma=0)`), so a link reproduces the state and the browser's
 * back and forward walk the path. Query: `at=k` shows the state after k of
 * the path's steps (the rest stay as "forward"), `cx=<property>` says the
 * path is that property's counterexample, `set=a=1,b=2` the model's
 * parameters. Shared by the server (which parses what the browser asks for)
 * and the client (which builds the links), so both read one format.
 */

/** An event as the text reports print it: `Type` or `Type(k=v, ...)`, without spaces in the URL. */
export function eventToken(event: { readonly type: string } & Readonly<Record<string, unknown>>): string {
  const { type, ...args } = event;
  const params = Object.entries(args).map(
    ([k, v]) => `${k}=${typeof v === 'string' && /^[\w.-]+$/.test(v) ? v : JSON.stringify(v)}`,
  );
  return params.length ? `${type}(${params.join(',')})` : type;
}

/** The event type a token names (what precedes its argument list). */
export const tokenType = (token: string): string => token.replace(/\(.*$/s, '');

export interface AppAddress {
  readonly model: string;
  readonly variant: string;
  /** The path: event tokens, in order. */
  readonly path: readonly string[];
  /** Steps of the path taken in the state shown (default: all of them). */
  readonly at?: number;
  /** The property whose counterexample the path is. */
  readonly cx?: string;
  /** Model parameters, as `--set` takes them (`dmas=3,mdevs=2`). */
  readonly set?: string;
}

/** Path segments keep `=`, `,`, `:` and `()` readable (RFC 3986 allows them there). */
const segment = (s: string) => encodeURIComponent(s).replace(/%(3D|2C|3A|40)/g, (m) => decodeURIComponent(m));

export function formatAddress(a: AppAddress): string {
  const path = ['', a.model, a.variant, ...a.path].map(segment).join('/');
  const q = new URLSearchParams();
  if (a.at !== undefined && a.at !== a.path.length) q.set('at', String(a.at));
  if (a.cx) q.set('cx', a.cx);
  if (a.set) q.set('set', a.set);
  const query = q.toString();
  return `${path}${a.path.length === 0 ? '/' : ''}${query ? `?${query}` : ''}`;
}

/** A problem with an address, said so that the page and the server log can show it as it is. */
export class AddressError extends Error {
  override name = 'AddressError';
}

/** Parse a pathname and query string; an AddressError for what cannot be read. */
export function parseAddress(pathname: string, search: string): AppAddress {
  const parts = pathname.split('/').slice(1);
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  const decoded = parts.map((p, i) => {
    try {
      return decodeURIComponent(p);
    } catch {
      throw new AddressError(`part ${i + 1} of the address, '${p}', is not valid percent-encoding`);
    }
  });
  const [model, variant, ...path] = decoded;
  if (!model) throw new AddressError('the address names no model');
  if (!variant) throw new AddressError(`the address names model '${model}' but no variant`);
  const q = new URLSearchParams(search);
  const at = q.get('at');
  if (at !== null && !/^\d+$/.test(at)) throw new AddressError(`at=${at}: a step number, from 0 on`);
  return {
    model,
    variant,
    path,
    ...(at !== null && { at: Number(at) }),
    ...(q.get('cx') && { cx: q.get('cx') as string }),
    ...(q.get('set') && { set: q.get('set') as string }),
  };
}
