/**
 * The bench's distributed row: N `vfio-mc explore --broker --node I/N`
 * processes on this machine, over a redis-server started on loopback, on the
 * benchmark model. Node 0 is measured as a whole process (its wall time is
 * the search's); the bytes are the broker's own count of what it received
 * (INFO stats total_net_input_bytes), so they include batches, credits,
 * commands, the gathered partitions and heartbeats.
 */
import { spawn } from 'node:child_process';
import { createClient } from 'redis';
import { startRedis } from '../broker-server.ts';

export interface DistributedRun {
  readonly states: number;
  readonly wall: number;
  readonly rssMB: number;
  readonly bytes: number;
}

async function receivedBytes(url: string): Promise<number> {
  const c = await createClient({ url }).connect();
  try {
    const info = await c.info('stats');
    return Number(/total_net_input_bytes:(\d+)/.exec(info)?.[1] ?? 0);
  } finally {
    c.destroy();
  }
}

/**
 * `measure` runs node 0 (argv) as a measured whole process and returns its output, wall time
 * and peak RSS (bench.ts's `measured`); the other nodes run alongside.
 */
export async function distributedRun(
  bin: string,
  model: string,
  set: string,
  nodes: number,
  measure: (argv: string[]) => { stdout: string; wall: number; rssMB: number },
): Promise<DistributedRun> {
  const server = await startRedis();
  try {
    const common = ['explore', model, '--set', set, '--no-check', '--broker', server.url];
    const others = Array.from({ length: nodes - 1 }, (_, i) =>
      spawn(process.execPath, [bin, ...common, '--node', `${i + 1}/${nodes}`], { stdio: 'ignore' }),
    );
    const exits = others.map((c) => new Promise((r) => c.once('exit', r)));
    const before = await receivedBytes(server.url);
    // measure() blocks this process (spawnSync): the other nodes are separate processes and go on.
    const m = measure([
      process.execPath,
      bin,
      ...common,
      '--node',
      `0/${nodes}`,
      '--no-trails',
      '--no-progress',
      '--json',
    ]);
    await Promise.all(exits);
    const bytes = (await receivedBytes(server.url)) - before;
    return { states: JSON.parse(m.stdout).states, wall: m.wall, rssMB: m.rssMB, bytes };
  } finally {
    await server.stop();
  }
}
