/**
 * One process's connection to the broker of a distributed search: a Redis
 * server, through the official client (npm `redis`). Two connections, as
 * Redis wants: one for blocking pops (BLPOP waits on the connection), one
 * for everything else. Both reconnect by themselves after a broker restart;
 * a connection that dropped after it was up is reported to `onLost`, since
 * a restart loses what the broker held (distributed-bfs.ts turns that into
 * a fault, never into a verdict).
 *
 * The keys of a run (`--run NAME`, by default the model, variant, parameters
 * and node count), all under `vfio-mc:NAME:`:
 *
 *   session        the coordinator's current session id (expires unless renewed)
 *   join:I         list: session ids for node I to join
 *   S:in:I         list: envelopes for node I in session S (batches, credits, commands)
 *   S:coord        list: envelopes for the coordinator (answers, notices)
 *   S:alive:I      node I's heartbeat (expires unless renewed)
 */
import { createClient, RESP_TYPES } from 'redis';
import { ModelError } from './model.ts';

/** How long a heartbeat lasts; a node whose heartbeat has expired is taken for dead. */
export const ALIVE_MS = 8000;
/** How long the coordinator's session lasts unless renewed (the nodes give up on it then). */
export const SESSION_MS = 30_000;
/** A list longer than this makes its writer wait (answers and notices, which have no credit). */
const LIST_HIGH = 32;

export interface BrokerTarget {
  readonly url: string;
  /** This process's node number, and how many there are. */
  readonly node: number;
  readonly nodes: number;
  /** Names the run on the broker; by default the model, variant, parameters and node count. */
  readonly run: string;
}

export class Keys {
  constructor(readonly prefix: string) {}
  get session(): string {
    return `${this.prefix}:session`;
  }
  join(i: number): string {
    return `${this.prefix}:join:${i}`;
  }
  in(s: string, i: number): string {
    return `${this.prefix}:${s}:in:${i}`;
  }
  coord(s: string): string {
    return `${this.prefix}:${s}:coord`;
  }
  alive(s: string, i: number): string {
    return `${this.prefix}:${s}:alive:${i}`;
  }
}

/** `--broker URL`: a redis:// or rediss:// URL, checked before anything connects. */
export function checkBrokerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ModelError(`--broker must be a URL such as redis://127.0.0.1:6379, got '${url}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new ModelError(`--broker: only Redis is supported (redis:// or rediss://), got '${u.protocol}//'`);
  return url;
}

function client(url: string, onLost: (why: string) => void) {
  let up = false;
  let tries = 0;
  const c = createClient({
    url,
    socket: {
      connectTimeout: 5000,
      // At start, give up after about 30 s; once up, retry for as long as the run waits (a broker restart).
      reconnectStrategy: (retries) =>
        !up && ++tries > 30
          ? new Error(`cannot reach the broker at ${url}`)
          : Math.min(100 * 2 ** retries, 1000),
    },
  }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  c.on('error', () => {}); // reported through 'reconnecting' (or the failed connect)
  c.on('ready', () => (up = true));
  c.on('reconnecting', () => {
    if (up) onLost(`the connection to the broker at ${url} dropped`);
  });
  return c;
}

export type Client = ReturnType<typeof client>;

export class BrokerLink {
  /** Bytes pushed onto the broker, for the bench's bytes a state. */
  bytesSent = 0;
  private constructor(
    readonly keys: Keys,
    readonly cmd: Client,
    readonly blocking: Client,
    private readonly onLost: (why: string) => void,
  ) {}

  static async connect(target: BrokerTarget, onLost: (why: string) => void): Promise<BrokerLink> {
    const cmd = client(target.url, onLost);
    const blocking = client(target.url, onLost);
    try {
      await Promise.all([cmd.connect(), blocking.connect()]);
    } catch (e) {
      for (const c of [cmd, blocking]) if (c.isOpen) c.destroy();
      const why = (e as Error).message;
      throw new ModelError(
        why.startsWith('cannot reach') ? `${why} (tried for 30 s)` : `the broker at ${target.url}: ${why}`,
      );
    }
    return new BrokerLink(new Keys(`vfio-mc:${target.run}`), cmd, blocking, onLost);
  }

  /** Push without waiting (in order on this connection). A message the broker refused is lost: a fault. */
  push(key: string, b: Buffer): void {
    this.bytesSent += b.length;
    this.cmd
      .rPush(key, b)
      .catch((e: Error) => this.onLost(`the broker did not take a message: ${e.message}`));
  }

  /** Push and wait while the list is long (no credit covers answers and notices). */
  async pushBounded(key: string, b: Buffer): Promise<void> {
    this.bytesSent += b.length;
    let length = await this.cmd.rPush(key, b);
    while (length > LIST_HIGH) {
      await new Promise((r) => setTimeout(r, 5));
      length = await this.cmd.lLen(key);
    }
  }

  /** The next element of the first non-empty list, waiting at most `seconds`; undefined on a timeout or a lost connection. */
  async pop(keys: string[], seconds: number): Promise<{ key: string; element: Buffer } | undefined> {
    try {
      const r = await this.blocking.blPop(keys, seconds);
      return r ? { key: r.key.toString(), element: r.element } : undefined;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
      return undefined;
    }
  }

  /** Wait until both connections are up (after a broker restart, they come back by themselves). */
  async ready(): Promise<void> {
    while (!this.cmd.isReady || !this.blocking.isReady) await new Promise((r) => setTimeout(r, 50));
  }

  close(): void {
    for (const c of [this.cmd, this.blocking]) if (c.isOpen) c.destroy();
  }
}
