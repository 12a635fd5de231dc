/**
 * The page: the address names the model, the variant, the path and the
 * step shown (shared/url.ts). Every link inside the app moves by
 * history.pushState, so back and forward walk the same states a reload or a
 * copied link lands on.
 */
import { useEffect, useState } from 'preact/hooks';
import type { ModelInfo, RunStatus, StateView } from '../shared/api.ts';
import { SwimLanes } from '../shared/swim-lanes.tsx';
import { type AppAddress, formatAddress, parseAddress } from '../shared/url.ts';
import { Actors } from './actors.tsx';
import { getModel, getRun, getStart, getState, startRun } from './api.ts';
import { Diagram } from './diagram.tsx';
import { Properties } from './properties.tsx';
import { StateTree } from './state-tree.tsx';
import { Verdicts } from './verdicts.tsx';

const here = () => location.pathname + location.search;

function go(href: string) {
  history.pushState(null, '', href);
  dispatchEvent(new PopStateEvent('popstate'));
}

/** Follow links inside the app without reloading the page (a modified click still opens a tab). */
function onClick(e: MouseEvent) {
  const a = (e.target as Element).closest?.('a');
  if (!a || a.origin !== location.origin || a.pathname.startsWith('/-/') || a.target) return;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  go(a.pathname + a.search);
}

function useLocation(): string {
  const [loc, setLoc] = useState(here());
  useEffect(() => {
    const f = () => setLoc(here());
    addEventListener('popstate', f);
    return () => removeEventListener('popstate', f);
  }, []);
  return loc;
}

function useRun(variant: string | undefined, set: string) {
  const [run, setRun] = useState<RunStatus>({ status: 'none' });
  // Starting a run restarts the polling below, which goes on while the run does.
  const [started, setStarted] = useState(0);
  useEffect(() => {
    if (!variant) return;
    let alive = true;
    let timer: ReturnType<typeof setTimeout>;
    const poll = () =>
      getRun(variant, set)
        .then((r) => {
          if (!alive) return;
          setRun(r);
          if (r.status === 'running') timer = setTimeout(poll, 300);
        })
        .catch((e: Error) => alive && setRun({ status: 'failed', error: e.message }));
    poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [variant, set, started]);
  const start = () => {
    if (!variant) return;
    startRun(variant, set)
      .then((r) => {
        setRun(r);
        setStarted((k) => k + 1);
      })
      .catch((e: Error) => setRun({ status: 'failed', error: e.message }));
  };
  return { run, start };
}

export function App() {
  const loc = useLocation();
  const [view, setView] = useState<StateView | undefined>();
  const [info, setInfo] = useState<ModelInfo | undefined>();
  const [error, setError] = useState<string | undefined>();
  let address: AppAddress | undefined;
  let addressError: string | undefined;
  try {
    const u = new URL(loc, location.origin);
    if (u.pathname !== '/') address = parseAddress(u.pathname, u.search);
  } catch (e) {
    addressError = (e as Error).message;
  }
  const variant = address?.variant;
  const set = address?.set ?? '';
  const { run, start } = useRun(variant, set);

  useEffect(() => {
    if (new URL(loc, location.origin).pathname !== '/') return;
    getStart()
      .then((r) => (r.address ? history.replaceState(null, '', r.address) : undefined))
      .then(() => dispatchEvent(new PopStateEvent('popstate')))
      .catch((e: Error) => setError(e.message));
  }, [loc]);
  useEffect(() => {
    if (!variant) return;
    getModel(variant, set).then(setInfo, (e: Error) => setError(e.message));
  }, [variant, set]);
  useEffect(() => {
    if (!address) return;
    getState(loc).then(
      (v) => {
        setView(v);
        setError(undefined);
      },
      (e: Error) => {
        setView(undefined);
        setError(e.message);
      },
    );
  }, [loc]);
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (!view || !address || (e.target as Element).closest?.('input, select, textarea')) return;
      const at = e.key === 'ArrowLeft' ? view.at - 1 : e.key === 'ArrowRight' ? view.at + 1 : -1;
      if (at >= 0 && at <= view.path.length && at !== view.at) go(formatAddress({ ...address, at }));
    };
    addEventListener('keydown', key);
    return () => removeEventListener('keydown', key);
  });

  const problem = addressError ?? error;
  if (!address || !view || !info || view.variant !== info.variant) {
    return (
      <div class="app" onClick={onClick}>
        <Header info={info} address={address} />
        {problem ? <Problem text={problem} /> : <p class="loading">loading…</p>}
      </div>
    );
  }
  return <Explorer address={address} view={view} info={info} run={run} start={start} problem={problem} />;
}

function Problem({ text }: { text: string }) {
  return (
    <div class="problem" role="alert" data-problem>
      {text}
    </div>
  );
}

function Header({ info, address }: { info?: ModelInfo; address?: AppAddress }) {
  const change = (variant: string) =>
    address && go(formatAddress({ model: address.model, variant, path: [], set: address.set }));
  return (
    <header>
      <span class="brand">vfio-mc</span>
      {info && (
        <>
          <span class="model" title={info.description}>
            {info.id}
          </span>
          <label>
            variant{' '}
            <select value={info.variant} onChange={(e) => change((e.target as HTMLSelectElement).value)}>
              {info.variants.map((v) => (
                <option key={v.name} value={v.name} title={v.description}>
                  {v.name}
                </option>
              ))}
            </select>
          </label>
          {info.set && <span class="params">--set {info.set}</span>}
          <span class="description">{info.variants.find((v) => v.name === info.variant)?.description}</span>
        </>
      )}
    </header>
  );
}

interface ExplorerProps {
  readonly address: AppAddress;
  readonly view: StateView;
  readonly info: ModelInfo;
  readonly run: RunStatus;
  readonly start: () => void;
  readonly problem?: string;
}

function Explorer({ address, view, info, run, start, problem }: ExplorerProps) {
  const taken = address.path.slice(0, view.path.length);
  const at = (k: number) => formatAddress({ ...address, path: taken, at: k });
  const fire = (token: string) =>
    formatAddress({
      model: address.model,
      variant: address.variant,
      set: address.set,
      path: [...taken.slice(0, view.at), token],
    });
  const counterexample = (property: string, path: readonly string[]) =>
    formatAddress({ model: address.model, variant: address.variant, set: address.set, path, cx: property });
  const cx =
    address.cx && run.status === 'done' ? run.report.verdicts.find((v) => v.name === address.cx) : undefined;
  const active = view.actors.flatMap((a) => a.active);
  useEffect(() => {
    document.title = `${info.id} / ${info.variant} · step ${view.at} of ${view.path.length} · vfio-mc`;
  });
  return (
    <div class="app" onClick={onClick} data-address={here()} data-at={view.at}>
      <Header info={info} address={address} />
      {(problem ?? view.error) && <Problem text={(problem ?? view.error) as string} />}
      {address.cx && (
        <div class="cx-banner" data-cx={address.cx}>
          Counterexample: {cx?.counterexample?.description ?? `'${address.cx}'`}. Step through it with ◀ ▶ (or
          the arrow keys), or click a step.
        </div>
      )}
      <section class="path">
        <nav class="steps-nav">
          <a class="nav" href={at(0)} aria-disabled={view.at === 0}>
            ⇤ initial
          </a>
          <a class="nav back" href={at(Math.max(0, view.at - 1))} aria-disabled={view.at === 0}>
            ◀ back
          </a>
          <span class="where">
            step {view.at} of {view.path.length}
          </span>
          <a
            class="nav forward"
            href={at(Math.min(view.path.length, view.at + 1))}
            aria-disabled={view.at === view.path.length}
          >
            forward ▶
          </a>
          <a class="nav" href={at(view.path.length)} aria-disabled={view.at === view.path.length}>
            last ⇥
          </a>
        </nav>
        <SwimLanes actors={info.actors} steps={view.path} current={view.at} href={at} />
      </section>
      <div class="now">
        <Actors actors={view.actors} fire={fire} />
        <Properties view={view} temporal={info.temporal} run={run} />
      </div>
      <div class="lower">
        <section class="state">
          <h2>State after step {view.at}</h2>
          <StateTree context={view.context} changed={view.changed} />
        </section>
        <Verdicts
          run={run}
          start={start}
          counterexample={counterexample}
          what={`${info.id} / ${info.variant}`}
        />
      </div>
      <section class="diagrams">
        <h2>State diagrams</h2>
        <div class="diagram-list">
          {info.diagrams.map((d) => (
            <Diagram
              key={d.actor}
              diagram={d}
              active={active}
              fired={view.fired}
              run={run.status === 'done' ? run.report : undefined}
            />
          ))}
        </div>
      </section>
    </div>
  );
}
