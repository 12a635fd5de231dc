/**
 * The web app's routes (fastify). Everything the app has is a fixed route:
 * the page, its script and style (bundled at start), and a small JSON API
 * under /-/api/. No route reads a file named by the request, so nothing
 * outside the app can be served. Every failure answers with one message that
 * the page shows and the log repeats; none ends the server.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ModelError } from '../../explorer/model.ts';
import type { ApiError } from '../shared/api.ts';
import { AddressError, formatAddress, parseAddress } from '../shared/url.ts';
import type { Bundle } from './bundle.ts';
import { PAGE } from './page.ts';
import { Runs } from './runs.ts';
import type { Session } from './session.ts';
import { stateView } from './state-view.ts';

export interface AppOptions {
  readonly session: Session;
  readonly bundle: Bundle;
  /** The variant and parameters `/` opens (the command line's). */
  readonly variant?: string;
  readonly set?: string;
  /** Whether the app answers to a Host header (the DNS-rebinding guard); default: to any. */
  readonly allowHost?: (host: string) => boolean;
  readonly log: (line: string) => void;
}

type Query = Record<string, string | undefined>;

/** A problem the user can fix (bad address, bad variant, model error): said as it is. */
const isUserError = (e: unknown): boolean => e instanceof ModelError || e instanceof AddressError;

export function buildApp(o: AppOptions): FastifyInstance {
  const { session, log } = o;
  const runs = new Runs(session.target, log);
  const app = Fastify({
    logger: false,
  });

  const fail = (req: FastifyRequest, reply: FastifyReply, code: number, message: string) => {
    log(`${req.method} ${req.url}: ${message}`);
    return reply
      .code(code)
      .type('application/json')
      .send({ error: message } satisfies ApiError);
  };

  app.addHook('onRequest', async (req, reply) => {
    const host = (req.headers.host ?? '').toLowerCase();
    if (o.allowHost && !o.allowHost(host)) {
      return fail(req, reply, 403, `this server answers only to loopback host names, not to Host '${host}'`);
    }
  });

  app.setErrorHandler((error, req, reply) => {
    const err = error as Error & { statusCode?: number };
    if (isUserError(err)) return fail(req, reply, 400, err.message);
    if (err.statusCode && err.statusCode < 500) return fail(req, reply, err.statusCode, err.message);
    log(`${req.method} ${req.url}: internal error (a bug in vfio-mc): ${err.stack ?? err.message}`);
    return reply
      .code(500)
      .send({ error: `internal error (a bug in vfio-mc): ${err.message}` } satisfies ApiError);
  });

  app.setNotFoundHandler((req, reply) => fail(req, reply, 404, `no such resource: ${req.url}`));

  const page = (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(PAGE);

  app.get('/-/app.js', (_req, reply) => reply.type('text/javascript; charset=utf-8').send(o.bundle.js));
  app.get('/-/app.css', (_req, reply) => reply.type('text/css; charset=utf-8').send(o.bundle.css));

  app.get('/-/api/start', async (req, reply) => {
    if (session.loadError)
      return fail(req, reply, 500, `${session.target} does not load: ${session.loadError}`);
    const variant = o.variant ?? (session.defaultVariant as string);
    return { address: formatAddress({ model: session.id as string, variant, path: [], set: o.set }) };
  });

  app.get('/-/api/model', async (req, reply) => {
    const q = req.query as Query;
    if (session.loadError)
      return fail(req, reply, 500, `${session.target} does not load: ${session.loadError}`);
    return session.info(q.variant ?? '', q.set ?? '');
  });

  app.get('/-/api/state', async (req, reply) => {
    const raw = (req.query as Query).address;
    if (!raw) return fail(req, reply, 400, 'no address given (?address=/model/variant/...)');
    if (session.loadError)
      return fail(req, reply, 500, `${session.target} does not load: ${session.loadError}`);
    const url = new URL(raw, 'http://localhost');
    const a = parseAddress(url.pathname, url.search);
    if (a.model !== session.id) {
      return fail(req, reply, 404, `this server runs model '${session.id}', not '${a.model}'`);
    }
    const view = stateView(session.variant(a.variant, a.set), a, a.set ?? '');
    if (view.error) log(`${raw}: ${view.error}`);
    return view;
  });

  app.get('/-/api/run', async (req) => {
    const q = req.query as Query;
    session.variant(q.variant ?? '', q.set ?? '');
    return runs.status(q.variant ?? '', q.set ?? '');
  });

  app.post('/-/api/run', async (req, reply) => {
    // A JSON body needs a CORS preflight from another origin, which this server never grants.
    if (!req.headers['content-type']?.startsWith('application/json')) {
      return fail(req, reply, 415, 'POST /-/api/run takes a JSON body');
    }
    const body = (req.body ?? {}) as { variant?: string; set?: string };
    session.variant(body.variant ?? '', body.set ?? '');
    const r = runs.start(body.variant ?? '', body.set ?? '');
    return 'refused' in r ? fail(req, reply, 409, r.refused) : r;
  });

  app.get('/', async (req, reply) => {
    if (session.loadError) return page(req, reply);
    const variant = o.variant ?? (session.defaultVariant as string);
    return reply.redirect(formatAddress({ model: session.id as string, variant, path: [], set: o.set }));
  });
  app.get('/*', (req, reply) => {
    if (req.url.startsWith('/-/')) return fail(req, reply, 404, `no such resource: ${req.url}`);
    return page(req, reply);
  });
  return app;
}
