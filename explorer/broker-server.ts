/**
 * A broker server on loopback, for the tests and the bench: the Debian
 * `nats-server` (or `redis-server`, for the measurement that chose NATS:
 * explorer/bench/broker-choice.ts), started on a free port, restartable on
 * the same port (the fault tests restart it under a running search), and
 * stopped with the process that started it. `bash explorer/broker-setup.sh`
 * installs the packages.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

export interface Server {
  readonly url: string;
  readonly port: number;
  readonly version: string;
  /** Stop the server and start it again on the same port (nothing it held survives). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A port nothing listens on now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function need(command: string, pkg: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin']) {
    const path = `${dir}/${command}`;
    if (spawnSync('test', ['-x', path]).status === 0) return path;
  }
  throw new Error(`${command} is not installed (Debian package ${pkg}: bash explorer/broker-setup.sh)`);
}

/** Start a process and wait until its log says it listens. */
function launch(path: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path} did not start within 10 s:\n${log}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      if (ready.test(log)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stderr!.off('data', onData);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${path} exited with ${code} before it listened:\n${log}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function serverOf(
  path: string,
  argsFor: (port: number) => string[],
  ready: RegExp,
  scheme: string,
  version: string,
): Promise<Server> {
  const port = await freePort();
  let child = await launch(path, argsFor(port), ready);
  const exitWithUs = () => child.kill('SIGKILL');
  process.once('exit', exitWithUs);
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    version,
    async restart() {
      await stopChild(child);
      child = await launch(path, argsFor(port), ready);
    },
    async stop() {
      process.off('exit', exitWithUs);
      await stopChild(child);
    },
  };
}

/** nats-server on 127.0.0.1 (core NATS: no JetStream, no persistence). */
export async function startNats(): Promise<Server> {
  const path = need('nats-server', 'nats-server');
  const version = /v([\d.]+)/.exec(spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  return serverOf(
    path,
    (port) => ['-a', '127.0.0.1', '-p', String(port)],
    /Server is ready/,
    'nats',
    version,
  );
}

/** redis-server on 127.0.0.1, without persistence. */
export async function startRedis(): Promise<Server> {
  const path = need('redis-server', 'redis-server');
  const version = /v=([\d.]+)/.exec(spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  return serverOf(
    path,
    (port) => ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    /Ready to accept connections/,
    'redis',
    version,
  );
}
