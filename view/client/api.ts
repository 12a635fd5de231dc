/** The server's JSON API; every failure comes back as an Error with the server's message. */
import type { ApiError, ModelInfo, RunStatus, StateView } from '../shared/api.ts';

async function call<T>(url: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch {
    throw new Error('the vfio-mc server does not answer: is `vfio-mc serve` still running?');
  }
  const body = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as
    T | ApiError;
  if (!res.ok) {
    throw new Error((body as ApiError).error ?? `the server answered ${res.status}`);
  }
  return body as T;
}

const q = (o: Record<string, string>) => new URLSearchParams(o).toString();

export const getStart = () => call<{ address: string }>('/-/api/start');
export const getModel = (variant: string, set: string) =>
  call<ModelInfo>(`/-/api/model?${q({ variant, set })}`);
export const getState = (address: string) => call<StateView>(`/-/api/state?${q({ address })}`);
export const getRun = (variant: string, set: string) => call<RunStatus>(`/-/api/run?${q({ variant, set })}`);
export const startRun = (variant: string, set: string) =>
  call<RunStatus>('/-/api/run', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ variant, set }),
  });
