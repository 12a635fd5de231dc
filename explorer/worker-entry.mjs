// Entry point of a worker thread of the parallel search (parallel-bfs.ts): the thread starts
// without the main thread's module hooks, so it registers tsx (TypeScript) here, and the
// model loader registers its own hooks when the worker loads the model file.
import { register } from 'tsx/esm/api';

register();
const { runPartitionThread } = await import('./worker.ts');
await runPartitionThread();
