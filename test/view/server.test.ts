import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import { ModelError } from '../../explorer/model.ts';
import { formatEvent } from '../../explorer/report-text.ts';
import { findModel } from '../../explorer/registry.ts';
import type { ModelInfo, RunStatus, StateView } from '../../view/shared/api.ts';
import { buildApp } from '../../view/server/app.ts';
import { bundleClient } from '../../view/server/bundle.ts';
import { startServer } from '../../view/server/serve.ts';
import { Session } from '../../view/server/session.ts';
import { stateView } from '../../view/server/state-view.ts';
import { regionCache } from '../fixtures/buggy.ts';

/** The vfio-wait deadlock of spec/container.md, as the page's address names it. */
const DEADLOCK = ['VmmMapDma(dma=0)', 'VmmUnmapVaddr(range=0)', 'VmmCloseDevice', 'MdevPinPages(dma=0)'];
const NO_BUNDLE = { js: '', css: '', ms: 0 };

async function app(target: string) {
  const log: string[] = [];
  const a = buildApp({ session: await Session.load(target), bundle: NO_BUNDLE, log: (l) => log.push(l) });
  return { app: a, log };
}

const state = (a: FastifyInstance, address: string) =>
  a.inject({ url: `/-/api/state?${new URLSearchParams({ address })}` });

describe('the state an address names', () => {
  let a: FastifyInstance;
  let log: string[];
  beforeAll(async () => ({ app: a, log } = await app('container')));
  afterAll(() => a.close());

  it('walks the vfio-wait deadlock: flagged, every actor stuck, with what the model says it waits for', async () => {
    const r = await state(a, `/container/vfio-wait/${DEADLOCK.join('/')}`);
    expect(r.statusCode).toBe(200);
    const v = r.json() as StateView;
    expect(v.at).toBe(4);
    expect(v.error).toBeUndefined();
    expect(v.deadlock).toBe(true);
    expect(v.actors.map((x) => [x.name, x.state, x.enabled.length])).toEqual([
      ['vmm', 'closingDevice', 0],
      ['mdev', 'waiting', 0],
      ['release', 'idle', 0],
    ]);
    // The waits are the model's own words where it gives them (waitingFor), a generic one otherwise.
    const variant = (await findModel('container')).variant('vfio-wait');
    const engine = createReferenceEngine(variant.machine);
    let s = engine.initial();
    for (const e of [
      { type: 'VmmMapDma', dma: 0 },
      { type: 'VmmUnmapVaddr', range: 0 },
      { type: 'VmmCloseDevice' },
      { type: 'MdevPinPages', dma: 0 },
    ])
      s = engine.step(s, e)!;
    for (const x of v.actors) {
      expect(x.waiting).toBe(variant.waitingFor?.(s, x.name) ?? 'no event enabled for it');
    }
    expect(v.path.map((p) => p.text)).toEqual([
      expect.stringMatching(/ = 0$/),
      expect.stringMatching(/ = 0$/),
      expect.stringMatching(/ … blocks$/),
      expect.stringMatching(/ … blocks$/),
    ]);
    expect(v.changed.map((c) => c.path)).toContain('wait.waiters');
    expect(v.fired).toEqual(['mdev.idle#MdevPinPages[0]']);
  });

  it('offers, per actor, the events the model generates and the machine takes, in its labels', async () => {
    const v = (await state(a, '/container/vfio-wait/')).json() as StateView;
    const variant = (await findModel('container')).variant('vfio-wait');
    const engine = createReferenceEngine(variant.machine);
    const s = engine.initial();
    const expected = variant
      .events(s)
      .filter((e) => engine.actorsOf(s, e).includes('vmm'))
      .map((e) => variant.label?.(e, s) ?? formatEvent(e));
    expect(v.actors[0].enabled.map((e) => e.label)).toEqual(expected);
    expect(v.actors[0].enabled.map((e) => e.token)).toContain('VmmMapDma(dma=0)');
    expect(v.invariants.every((i) => i.status === 'holds')).toBe(true);
    expect(v.deadlock).toBe(false);
    // Nobody is blocked at the start: the model's waitingFor says so, and the page shows no wait.
    expect(v.actors.map((x) => x.waiting)).toEqual(engine.actors.map((a) => variant.waitingFor?.(s, a)));
  });

  it('at=k shows the state after k steps and keeps the rest of the path', async () => {
    const v = (await state(a, `/container/vfio-wait/${DEADLOCK.join('/')}?at=2`)).json() as StateView;
    expect([v.at, v.path.length, v.deadlock]).toEqual([2, 4, false]);
    expect(v.actors[0].enabled.map((e) => e.token)).toContain('VmmCloseDevice');
  });

  it('an unknown event: the state before it, the reason in the page and in the log', async () => {
    const r = await state(a, '/container/vfio-wait/VmmMapDma(dma=0)/VmmFly');
    const v = r.json() as StateView;
    expect(v.at).toBe(1);
    expect(v.error).toBe(
      "step 2: 'VmmFly' is not an event of container / vfio-wait: no transition takes 'VmmFly'",
    );
    expect(log.at(-1)).toContain(v.error);
  });

  it('a step the machine rejects: the state before it, and what is enabled there', async () => {
    const v = (await state(a, '/container/vfio-wait/VmmMapDma(dma=0)/MdevPinWake')).json() as StateView;
    expect(v.at).toBe(1);
    expect(v.error).toMatch(/^step 2: the machine does not take MdevPinWake after step 1 \(enabled there: /);
    expect(log.at(-1)).toContain('step 2: the machine does not take MdevPinWake');
  });

  it('an unknown variant, another model, bad parameters, bad percent-encoding: one clear message each', async () => {
    const cases: [string, number, string][] = [
      ['/container/nope/', 400, "model 'container' has no variant 'nope' (variants: vfio-wait, close-flag"],
      ['/ioas/current/', 404, "this server runs model 'container', not 'ioas'"],
      [
        '/container/current/?set=vmms=3',
        400,
        "model 'container' has no parameter 'vmms' (parameters: dmas, mdevs)",
      ],
      [
        '/container/current/%E0%A4%A',
        400,
        "part 3 of the address, '%E0%A4%A', is not valid percent-encoding",
      ],
      ['/container/current/?at=x', 400, 'at=x: a step number, from 0 on'],
    ];
    for (const [address, code, message] of cases) {
      const r = await state(a, address);
      expect([address, r.statusCode]).toEqual([address, code]);
      expect(r.json().error).toContain(message);
      expect(log.at(-1)).toContain(message);
    }
  });

  it('the model: variants, actors, and a laid-out state diagram per actor', async () => {
    const info = (await a.inject({ url: '/-/api/model?variant=vfio-wait' })).json() as ModelInfo;
    expect(info.actors).toEqual(['vmm', 'mdev', 'release']);
    expect(info.variants.map((v) => v.name)).toContain('current');
    const mdev = info.diagrams.find((d) => d.actor === 'mdev')!;
    expect(mdev.nodes.map((n) => n.id).sort()).toEqual(
      ['mdev.__initial', 'mdev.done', 'mdev.halted', 'mdev.idle', 'mdev.waiting'].sort(),
    );
    const names = mdev.edges.flatMap((e) => e.transitions.map((t) => t.name));
    const machine = (await findModel('container')).variant('vfio-wait').machine;
    const all = createReferenceEngine(machine).transitionIds.map((id) => id.replace('container.', ''));
    expect(names.sort()).toEqual(all.filter((id) => id.startsWith('mdev.')).sort());
    for (const n of mdev.nodes) expect(n.x + n.width).toBeLessThanOrEqual(mdev.width);
    for (const e of mdev.edges) expect(e.points.length).toBeGreaterThanOrEqual(2);
  });
});

describe('a model with uAPI labels and waitingFor (example-locks)', () => {
  it('shows its labels on the events and in the path, and its words for the waits', async () => {
    const { app: a } = await app('example-locks');
    try {
      const start = (await state(a, '/example-locks/abba/')).json() as StateView;
      expect(start.actors[0].enabled.map((e) => [e.token, e.label])).toEqual([
        ['ThreadATakeFirst', 'thread A: mutex_lock(l1)'],
      ]);
      const end = (
        await state(a, '/example-locks/abba/ThreadATakeFirst/ThreadBTakeFirst')
      ).json() as StateView;
      expect(end.path.map((p) => p.text)).toEqual(['thread A: mutex_lock(l1)', 'thread B: mutex_lock(l2)']);
      expect(end.deadlock).toBe(true);
      expect(end.actors.map((x) => x.waiting)).toEqual([
        'in mutex_lock(l2), held by threadB',
        'in mutex_lock(l1), held by threadA',
      ]);
    } finally {
      await a.close();
    }
  });
});

describe('a model function that throws', () => {
  it('is a message naming the model and what it threw', () => {
    const variant = regionCache('guard-throws').variant();
    expect(() => stateView(variant, { model: 'region-cache', variant: 'default', path: [] }, '')).toThrow(
      new ModelError(
        "a function of model 'region-cache' threw Error: Unable to evaluate guard in transition for event 'Remap' in state node 'region-cache.vmm': Cannot read properties of undefined (reading 'length')",
      ),
    );
  });
});

describe('running the explorer from the page', () => {
  it('runs in a worker, one at a time, and reports verdicts, counterexample paths and coverage', async () => {
    const { app: a, log } = await app('example-locks');
    try {
      const post = (variant: string, headers = { 'content-type': 'application/json' }) =>
        a.inject({
          url: '/-/api/run',
          method: 'POST',
          headers,
          payload: JSON.stringify({ variant, set: '' }),
        });
      expect((await post('abba')).json()).toEqual({ status: 'running' });
      const busy = await post('ordered');
      expect(busy.statusCode).toBe(409);
      expect(busy.json().error).toBe('an exploration of abba is running; wait for it to finish');
      let run = (await a.inject({ url: '/-/api/run?variant=abba' })).json() as RunStatus;
      for (let i = 0; i < 600 && run.status === 'running'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        run = (await a.inject({ url: '/-/api/run?variant=abba' })).json() as RunStatus;
      }
      if (run.status !== 'done') throw new Error(`run ended ${JSON.stringify(run)}`);
      expect(run.report.states).toBe(21);
      const deadlock = run.report.verdicts.find((v) => v.name === 'deadlock');
      expect(deadlock).toMatchObject({ status: 'violated', expectedViolated: true });
      expect(deadlock?.counterexample?.path).toEqual(['ThreadATakeFirst', 'ThreadBTakeFirst']);
      expect(run.report.neverFired).toEqual([]);
      expect(log).toEqual([
        'exploring example-locks / abba',
        'POST /-/api/run: an exploration of abba is running; wait for it to finish',
        expect.stringMatching(/^explored example-locks \/ abba: 21 states in \d+\.\d s$/),
      ]);
      expect((await a.inject({ url: '/-/api/run?variant=ordered' })).json()).toEqual({ status: 'none' });
    } finally {
      await a.close();
    }
  });
});

describe('the server never crashes and serves nothing outside the app', () => {
  let a: FastifyInstance;
  let log: string[];
  beforeAll(async () => ({ app: a, log } = await app('container')));
  afterAll(() => a.close());

  it('answers every bad request with a message, and keeps answering', async () => {
    const bad = [
      { url: '/-/../package.json' },
      { url: '/-/api/state' },
      { url: '/-/api/nothing' },
      { url: '/-/app.js/../../package.json' },
      { url: '/%2e%2e/%2e%2e/etc/passwd' },
      {
        url: '/-/api/run',
        method: 'POST' as const,
        payload: 'variant=current',
        headers: { 'content-type': 'text/plain' },
      },
      {
        url: '/-/api/run',
        method: 'POST' as const,
        payload: '{not json',
        headers: { 'content-type': 'application/json' },
      },
      { url: `/container/current/${'x/'.repeat(5000)}` },
    ];
    const before = log.length;
    let errors = 0;
    for (const req of bad) {
      const r = await a.inject(req);
      // Either the app's page (whose script then says what is wrong) or one error message: never a file.
      expect(r.body).not.toContain('"name": "vfio-mc"');
      expect(r.body).not.toContain('root:');
      if (r.statusCode >= 400) {
        errors++;
        expect(r.json().error).toEqual(expect.any(String));
      } else expect(r.body).toMatch(/^<!doctype html>/);
    }
    expect(errors).toBeGreaterThanOrEqual(4);
    expect(log.length - before).toBe(errors);
    const ok = await state(a, '/container/current/');
    expect(ok.statusCode).toBe(200);
  });

  it('every address outside /-/ gets the same page, which loads only the app', async () => {
    const r = await a.inject({ url: '/anything/at/all' });
    expect(r.headers['content-type']).toContain('text/html');
    expect(r.body).toContain('<script type="module" src="/-/app.js">');
    expect(r.body).not.toMatch(/(src|href)="https?:/);
  });
});

describe('a model that fails to load', () => {
  it('is said in the page (every API answer) and in the log, and the server still runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-view-'));
    const file = join(dir, 'bad.ts');
    writeFileSync(file, "import { defineModel } from 'vfio-mc';\nexport default defineModel({ id: 'bad', \n");
    const log: string[] = [];
    const server = await startServer(file, { port: 0, log: (l) => log.push(l) });
    try {
      expect(log[0]).toMatch(/bad\.ts does not load: .*bad\.ts.*(syntax error|Transform failed)/);
      const page = await fetch(server.url);
      expect(page.status).toBe(200);
      const start = await fetch(`http://127.0.0.1:${server.port}/-/api/start`);
      expect(start.status).toBe(500);
      expect((await start.json()).error).toMatch(/bad\.ts does not load: /);
      const st = await fetch(`http://127.0.0.1:${server.port}/-/api/state?address=/bad/x/`);
      expect(st.status).toBe(500);
      expect((await st.json()).error).toMatch(/bad\.ts does not load: /);
    } finally {
      await server.close();
    }
  });
});

describe('binding', () => {
  it('refuses an address other than loopback unless --expose', async () => {
    await expect(startServer('container', { host: '0.0.0.0', port: 0 })).rejects.toThrow(
      '--host 0.0.0.0 is not a loopback address: anyone who reaches it could run explorations here; add --expose to allow it',
    );
  });

  it('binds 127.0.0.1 by default and answers only to loopback host names (no DNS rebinding)', async () => {
    const log: string[] = [];
    const server = await startServer('example-locks', { port: 0, log: (l) => log.push(l) });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}/example-locks/ordered/`);
      const get = (host: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port: server.port, path: '/-/api/start', headers: { host } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
      expect(await get(`127.0.0.1:${server.port}`)).toBe(200);
      expect(await get(`localhost:${server.port}`)).toBe(200);
      expect(await get(`attacker.example:${server.port}`)).toBe(403);
      expect(log.at(-1)).toContain("not to Host 'attacker.example:");
    } finally {
      await server.close();
    }
  });

  it('a wrong model id, --variant or --set on the command line is an error before anything is served', async () => {
    await expect(startServer('contianer', { port: 0 })).rejects.toThrow(
      "unknown model 'contianer' (registered: ",
    );
    await expect(startServer('container', { port: 0, variant: 'nope' })).rejects.toThrow(
      "model 'container' has no variant 'nope'",
    );
    await expect(startServer('container', { port: 0, set: 'dmas=9' })).rejects.toThrow(
      "model 'container': dmas must be an integer from 1 to 8, got 9",
    );
  });
});

describe('the page bundle', () => {
  it('is built by esbuild at start, from view/client, in well under a few seconds', async () => {
    const b = await bundleClient();
    expect(b.js).toContain('/-/api/state');
    expect(b.css).toContain('.lanes');
    expect(b.ms).toBeLessThan(5000);
  });
});
