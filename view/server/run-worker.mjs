// A worker thread starts without the main thread's TypeScript loader: register tsx
// here, then run the job (an exploration must not block the server's event loop).
import { register } from 'tsx/esm/api';

register();
await import('./run-job.ts');
