/**
 * Why the distributed search runs over NATS and not Redis: the measurement
 * behind the choice (explorer/README.md, "Distributed search"). Both servers
 * are the Debian packages, started here on loopback; both clients are the
 * official npm ones (`nats`, `redis`). Three things are measured:
 *
 * 1. throughput of 256 KB batches (the partitions' batch size) from one
 *    process's connection to another's: NATS publish/subscribe, Redis
 *    RPUSH/BLPOP on a list (a queue per owner) and Redis PUBLISH/SUBSCRIBE;
 * 2. what a server restart does to a connected client: does it reconnect by
 *    itself, and what happens to the messages in flight;
 * 3. the largest message the server takes by default.
 *
 * Usage: tsx explorer/bench/broker-choice.ts [--batches N]
 */
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import { createClient, RESP_TYPES } from 'redis';
import { startNats, startRedis, type Server } from '../broker-server.ts';

const { values } = parseArgs({ options: { batches: { type: 'string', default: '800' } } });
const BATCHES = Number(values.batches);
const BATCH = new Uint8Array(256 * 1024).map((_, i) => i & 255);

const mbps = (n: number, ms: number) => (n * BATCH.length) / 2 ** 20 / (ms / 1000);

/** As the exchange does: at most 8 batches in flight; the consumer's progress lets the producer go on. */
class Window {
  got = 0;
  private wake: (() => void) | undefined;
  arrived(): void {
    this.got++;
    this.wake?.();
  }
  async room(sent: number): Promise<void> {
    while (sent - this.got >= 8) await new Promise<void>((r) => (this.wake = r));
    this.wake = undefined;
  }
}

async function natsThroughput(url: string): Promise<number> {
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  const w = new Window();
  const done = new Promise<void>((resolve) => {
    sub.subscribe('bench', {
      callback: () => {
        w.arrived();
        if (w.got === BATCHES) resolve();
      },
    });
  });
  await sub.flush();
  const t = performance.now();
  for (let i = 0; i < BATCHES; i++) {
    pub.publish('bench', BATCH);
    await w.room(i + 1);
  }
  await done;
  const ms = performance.now() - t;
  await pub.close();
  await sub.close();
  return mbps(BATCHES, ms);
}

async function redisListThroughput(url: string): Promise<number> {
  const pub = await createClient({ url }).connect();
  const sub = (await createClient({ url }).connect()).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  const buf = Buffer.from(BATCH);
  const w = new Window();
  const t = performance.now();
  const reader = (async () => {
    for (let i = 0; i < BATCHES; i++) {
      await sub.blPop('bench', 0);
      w.arrived();
    }
  })();
  for (let i = 0; i < BATCHES; i++) {
    void pub.rPush('bench', buf);
    await w.room(i + 1);
  }
  await reader;
  const ms = performance.now() - t;
  pub.destroy();
  sub.destroy();
  return mbps(BATCHES, ms);
}

async function redisPubSubThroughput(url: string): Promise<number> {
  const pub = await createClient({ url }).connect();
  const sub = await createClient({ url }).connect();
  const w = new Window();
  const done = new Promise<void>((resolve) => {
    void sub.subscribe(
      'bench',
      () => {
        w.arrived();
        if (w.got === BATCHES) resolve();
      },
      true,
    );
  });
  await new Promise((r) => setTimeout(r, 100));
  const buf = Buffer.from(BATCH);
  const t = performance.now();
  for (let i = 0; i < BATCHES; i++) {
    void pub.publish('bench', buf);
    await w.room(i + 1);
  }
  await done;
  const ms = performance.now() - t;
  pub.destroy();
  sub.destroy();
  return mbps(BATCHES, ms);
}

/** Restart the server under a connected NATS client: does it come back by itself, and in how long? */
async function natsRestart(server: Server): Promise<string> {
  const nc: NatsConnection = await connect({
    servers: server.url,
    reconnectTimeWait: 100,
    maxReconnectAttempts: -1,
  });
  const events: string[] = [];
  void (async () => {
    for await (const s of nc.status()) events.push(s.type);
  })();
  const t = performance.now();
  await server.restart();
  for (let i = 0; i < 100 && !events.includes('reconnect'); i++) await new Promise((r) => setTimeout(r, 50));
  const back = events.includes('reconnect');
  const seconds = ((performance.now() - t) / 1000).toFixed(1);
  await nc.close();
  return back
    ? `reconnected by itself after ${seconds} s (status events: ${[...new Set(events)].join(', ')}); core subjects keep no messages`
    : 'did not reconnect';
}

async function redisRestart(server: Server): Promise<string> {
  const c = createClient({ url: server.url, socket: { reconnectStrategy: () => 100 } });
  const events: string[] = [];
  c.on('error', () => events.push('error'));
  c.on('reconnecting', () => events.push('reconnecting'));
  c.on('ready', () => events.push('ready'));
  await c.connect();
  await c.rPush('kept', 'x');
  const t = performance.now();
  await server.restart();
  for (let i = 0; i < 100; i++) {
    try {
      await c.ping();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const seconds = ((performance.now() - t) / 1000).toFixed(1);
  const left = await c.lLen('kept');
  c.destroy();
  return `reconnected by itself after ${seconds} s; a list pushed before the restart holds ${left} item(s) (no persistence configured)`;
}

const nats = await startNats();
const redis = await startRedis();
try {
  console.log(`${BATCHES} batches of 256 KB, loopback, one publisher and one consumer process connection`);
  const rows: [string, number][] = [];
  rows.push(['NATS publish/subscribe (nats-server ' + nats.version + ')', await natsThroughput(nats.url)]);
  rows.push([
    'Redis RPUSH/BLPOP list (redis-server ' + redis.version + ')',
    await redisListThroughput(redis.url),
  ]);
  rows.push(['Redis PUBLISH/SUBSCRIBE', await redisPubSubThroughput(redis.url)]);
  for (const [name, v] of rows) console.log(`  ${name.padEnd(52)} ${v.toFixed(0).padStart(6)} MB/s`);
  console.log(`NATS restart: ${await natsRestart(nats)}`);
  console.log(`Redis restart: ${await redisRestart(redis)}`);
  console.log(`largest message by default: NATS max_payload 1 MB; Redis proto-max-bulk-len 512 MB`);
} finally {
  await nats.stop();
  await redis.stop();
}
