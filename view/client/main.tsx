/**
 * The page's entry: the address is the state (shared/url.ts); moving
 * through the path pushes a history entry, so back and forward work and a
 * copied link lands on the same state.
 */
import { render } from 'preact';
import { App } from './app.tsx';

render(<App />, document.getElementById('app') as HTMLElement);
