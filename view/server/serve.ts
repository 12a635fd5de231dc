/**
 * `vfio-mc serve`: the explorer in the browser. It binds to 127.0.0.1 unless
 * told otherwise, and another address needs --expose as well: the app runs
 * explorations on this machine for whoever reaches it. On a loopback address
 * it also answers only to loopback host names, so a web page elsewhere cannot
 * reach it through DNS rebinding.
 */
import { isIP } from 'node:net';
import { ModelError } from '../../explorer/model.ts';
import { isModelPath } from '../../explorer/registry.ts';
import { formatAddress } from '../shared/url.ts';
import { buildApp } from './app.ts';
import { bundleClient } from './bundle.ts';
import { Session } from './session.ts';

export interface ServeOptions {
  readonly variant?: string;
  /** Model parameters as `--set` takes them (`dmas=3`). */
  readonly set?: string;
  readonly host?: string;
  readonly port?: number;
  readonly expose?: boolean;
  readonly log?: (line: string) => void;
}

export interface Server {
  /** The address of the start page. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 7317;

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

const stderrLog = (line: string) => process.stderr.write(`vfio-mc serve: ${line}\n`);

export async function startServer(target: string, o: ServeOptions = {}): Promise<Server> {
  const host = o.host ?? '127.0.0.1';
  const log = o.log ?? stderrLog;
  if (!isLoopback(host) && !o.expose) {
    throw new ModelError(
      `--host ${host} is not a loopback address: anyone who reaches it could run explorations here; add --expose to allow it`,
    );
  }
  const session = await Session.load(target);
  // A mistyped model id is a usage error; a model file that fails to load is shown in the page.
  if (session.loadError && !isModelPath(target)) throw new ModelError(session.loadError);
  if (session.loadError) log(`${target} does not load: ${session.loadError}`);
  // Named on the command line: a wrong variant or parameter is a usage error now, not a page later.
  else session.variant(o.variant ?? (session.defaultVariant as string), o.set ?? '');
  const bundle = await bundleClient();
  let hosts: Set<string> | undefined;
  const allowHost = (h: string) => hosts === undefined || hosts.has(h);
  const app = buildApp({ session, bundle, variant: o.variant, set: o.set, log, allowHost });
  await app.listen({ host, port: o.port ?? DEFAULT_PORT });
  const { port } = app.server.address() as { port: number };
  if (!o.expose) {
    const names = ['127.0.0.1', 'localhost', '[::1]', host.includes(':') ? `[${host}]` : host];
    hosts = new Set(names.map((n) => `${n}:${port}`));
  }
  const shown = host.includes(':') ? `[${host}]` : host;
  const start = session.loadError
    ? '/'
    : formatAddress({
        model: session.id as string,
        variant: o.variant ?? (session.defaultVariant as string),
        path: [],
        set: o.set,
      });
  return { url: `http://${shown}:${port}${start}`, port, close: () => app.close() };
}

/** The command: start, say where, and keep serving until interrupted. */
export async function serveCommand(target: string, o: ServeOptions): Promise<number> {
  const server = await startServer(target, o);
  process.stdout.write(`vfio-mc serve: ${server.url}  (Ctrl-C stops it)\n`);
  return 0;
}
