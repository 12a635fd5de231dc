// Entry point of the partition thread of a distributed search's node (distributed-node.ts): as
// worker-entry.mjs, with the broker's exchange (exchange-broker.ts) in place of ports between threads.
import { register } from 'tsx/esm/api';

register();
const { runPartitionThread } = await import('./worker.ts');
const { RelayExchange } = await import('./exchange-broker.ts');
await runPartitionThread((init) => new RelayExchange(init.partition, init.partitions, init.relay));
