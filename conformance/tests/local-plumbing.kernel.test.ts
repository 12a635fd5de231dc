// The local target's plumbing on this host, which has no /dev/iommu: shim processes on unix
// sockets, spawn, fork with inherited fds, exec keeping fds, exit, the allow-list. Only
// harmless nodes (/dev/null, /dev/zero) are allowed. Needs root for /dev/kmsg sync markers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHostShimForTest, outNum, type Target } from '../target.ts';
import { step } from './steps.ts';

let target: Target;

beforeAll(async () => {
  target = await openHostShimForTest({ kind: 'local', allow: ['/dev/null', '/dev/zero'] });
});

afterAll(async () => {
  await target?.close();
});

describe('local plumbing', () => {
  it('runs actors on the host: open, fork, exec keeping fds, exit, refusals', async () => {
    const a = target.actor('a');
    const fd = outNum(await step(a, 'open', { path: '/dev/null' }, '0'), 'fd');
    const other = outNum(await step(a, 'open', { path: '/dev/zero' }, '0'), 'fd');
    await expect(a.call('open', { path: '/etc/passwd' })).rejects.toThrow(/not in the allow-list/);
    await step(a, 'fork', { child: 'b' }, '0');
    const b = target.actor('b');
    expect((await step(b, 'fds', {}, '0')).out.fds).toEqual([fd, other]);
    expect(b.pid).not.toBe(a.pid);
    const pid = a.pid;
    const exec = await step(a, 'exec', { keep: [fd] }, '0');
    expect(exec.out.pid).toBe(pid);
    expect(exec.out.fds).toEqual([fd]);
    await step(a, 'close', { fd }, '0');
    await step(a, 'close', { fd: other }, 'EBADF');
    await step(b, 'exit', { code: 0 }, '0');
    await expect(b.call('getpid', {})).rejects.toThrow(/has exited/);
    await step(target.actor('c'), 'getpid', {}, '0');
  });
});
