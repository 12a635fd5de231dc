// The local target: the shim runs on this host against its real /dev/iommu and /dev/vfio.
// It needs root (the shim sets RLIMIT_MODE and opens device nodes) and a kernel with
// CONFIG_IOMMUFD; IOMMU_TEST_CMD ops further need CONFIG_IOMMUFD_TEST, which no distribution
// kernel enables. The kernel log is followed with `dmesg --follow-new`.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedKernel } from '../kernel/build.ts';
import { KernelLog } from '../qemu/kernel-log.ts';
import { LineChannel } from '../qemu/vm.ts';
import { ensureShim } from '../shim/build.ts';
import { checkAllow } from './qemu.ts';
import type { Transport } from './session.ts';

export interface LocalTargetOptions {
  kind: 'local';
  /** device paths and mdev:<uuid> entries the shim may touch (default /dev/iommu, /dev/vfio/vfio) */
  allow?: string[];
  ports?: number;
  callTimeoutMs?: number;
}

export interface HostFacts {
  uid: number | undefined;
  hasDevIommu: boolean;
}

export function hostFacts(): HostFacts {
  return { uid: process.getuid?.(), hasDevIommu: existsSync('/dev/iommu') };
}

/** Why this host cannot be a local target, or an empty list. */
export function localPrerequisitesMissing(facts: HostFacts = hostFacts()): string[] {
  const missing: string[] = [];
  if (facts.uid !== 0) missing.push(`root (running as uid ${facts.uid ?? 'unknown'})`);
  if (!facts.hasDevIommu) missing.push('/dev/iommu (a host kernel with CONFIG_IOMMUFD)');
  return missing;
}

/** Each connection to port<N>.sock is the shim of port N (a reconnect after exec replaces it). */
function listenPort(path: string, channel: LineChannel): Server {
  const server = createServer((sock: Socket) => channel.replace(sock));
  server.listen(path);
  return server;
}

export async function startLocalTransport(opts: LocalTargetOptions): Promise<Transport> {
  const missing = localPrerequisitesMissing();
  if (missing.length > 0) throw new Error(`the local target needs ${missing.join(' and ')}`);
  return startShimOnHost(opts);
}

/**
 * The local target's plumbing without its prerequisite checks: shim processes on this host
 * talking over unix sockets. Used by startLocalTransport and by the plumbing test, which
 * runs it with an allow-list of harmless nodes on a host without /dev/iommu.
 */
export async function startShimOnHost(opts: LocalTargetOptions): Promise<Transport> {
  const build = cachedKernel();
  if (!build)
    throw new Error('the shim is built against the cached kernel headers: run `npm run kernel:build` first');
  const shim = ensureShim(build);
  const allow = checkAllow(opts.allow ?? ['/dev/iommu', '/dev/vfio/vfio']);
  const ports = opts.ports ?? 12;
  const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-local-'));
  const channels = new Map<number, LineChannel>();
  const servers: Server[] = [];
  for (let p = 1; p <= ports; p++) {
    const channel = new LineChannel(p);
    channels.set(p, channel);
    servers.push(listenPort(join(dir, `port${p}.sock`), channel));
  }
  const log = new KernelLog();
  const dmesg = spawn('dmesg', ['--follow-new'], { stdio: ['ignore', 'pipe', 'ignore'] });
  dmesg.stdout.setEncoding('utf8');
  dmesg.stdout.on('data', (chunk: string) => log.push(chunk));
  const supervisor = spawn(shim, ['--port', '1', '--chan-dir', dir, '--allow', allow], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const died = new Promise<string>((resolve) => {
    supervisor.on('exit', (code, signal) => resolve(`the local shim supervisor exited (${code ?? signal})`));
    supervisor.on('error', (e) => resolve(`the local shim could not start: ${e.message}`));
  });
  return {
    log,
    ports,
    channel: (p) => {
      const ch = channels.get(p);
      if (!ch) throw new Error(`the local target has no port ${p}`);
      return ch;
    },
    died,
    stop: async () => {
      supervisor.kill('SIGKILL');
      dmesg.kill('SIGTERM');
      for (const s of servers) s.close();
      for (const ch of channels.values()) ch.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
