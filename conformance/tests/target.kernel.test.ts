// The target itself: allow-list refusals, independent actors with a blocked call, fail-nth,
// exec keeping fds, a kernel WARN captured into the step's `splat`, and a dead VM that is
// reported and restarted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_PCI_DEVICE } from '../qemu/vm.ts';
import { openTarget, outNum, type Target, TargetDeadError } from '../target.ts';
import { step } from './steps.ts';

const ALLOWED_MDEV = 'a1b2c3d4-0000-4000-8000-000000000001';
const OTHER_MDEV = 'a1b2c3d4-0000-4000-8000-000000000002';

let target: Target;

beforeAll(async () => {
  target = await openTarget({ kind: 'qemu', allow: ['/dev/iommu', `mdev:${ALLOWED_MDEV}`] });
  console.log(`boot to ready: ${target.bootMs} ms`);
});

afterAll(async () => {
  await target?.close();
});

describe('the shim refuses what it was not told to use', () => {
  it('refuses a device path and an mdev outside the allow-list, allows the mdev it was given', async () => {
    const a = target.actor('allow');
    await expect(a.call('open', { path: '/dev/vfio/vfio' })).rejects.toThrow(/not in the allow-list/);
    await expect(a.call('open', { path: '/dev/../dev/iommu' })).rejects.toThrow(/not in the allow-list/);
    await expect(a.call('mtty_create', { uuid: OTHER_MDEV })).rejects.toThrow(/not in the allow-list/);
    // the VM's test PCI device is not named: /init left it unbound, the shim will not look it up
    await expect(a.call('pci_group', { bdf: TEST_PCI_DEVICE })).rejects.toThrow(/not in the allow-list/);
    await expect(a.call('pci_group', { bdf: '0000:00:10.0/../x' })).rejects.toThrow(/malformed bdf/);
    const created = await step(a, 'mtty_create', { uuid: ALLOWED_MDEV, type: 'mtty-1' }, '0');
    // the allowed mdev's own nodes may be opened: its group and its cdev
    const group = outNum(await step(a, 'open', { path: String(created.out.group_path) }, '0'), 'fd');
    const cdev = outNum(await step(a, 'open', { path: String(created.out.cdev_path) }, '0'), 'fd');
    await expect(a.call('vfio_group_get_device_fd', { fd: group, name: OTHER_MDEV })).rejects.toThrow(
      /not in the allow-list/,
    );
    await expect(a.call('vfio_group_get_device_fd', { fd: group, name: TEST_PCI_DEVICE })).rejects.toThrow(
      /not in the allow-list/,
    );
    await step(a, 'close', { fd: cdev }, '0');
    await step(a, 'close', { fd: group }, '0');
    await step(a, 'mtty_remove', { uuid: ALLOWED_MDEV }, '0');
    await expect(a.call('no_such_op', {})).rejects.toThrow(/unknown op/);
    await expect(a.call('ioas_alloc', {})).rejects.toThrow(/missing argument fd/);
  });
});

describe('actors', () => {
  it('a call that does not return is reported blocked while other actors go on', async () => {
    const slow = target.actor('slow');
    const fast = target.actor('fast');
    await step(slow, 'getpid', {}, '0');
    const blocked = await slow.call('sleep', { ms: 6000 }, { timeoutMs: 1500 });
    expect(blocked.status).toBe('blocked');
    expect(blocked.errno).toBe('BLOCKED');
    await expect(slow.call('getpid', {})).rejects.toThrow(/still in call/);
    const r = await step(fast, 'getpid', {}, '0');
    expect(r.out.pid).toBe(fast.pid);
    const late = await slow.settle(20_000);
    expect(late.status).toBe('done');
    expect(late.errno).toBe('0');
    await step(slow, 'getpid', {}, '0');
  });

  it('fail_nth makes the next call fail at the first fault site, then disarms', async () => {
    const a = target.actor('failnth');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    await step(a, 'fail_nth', { n: 1 }, '0');
    const failed = await a.call('ioas_alloc', { fd });
    expect(failed.errno).toBe('ENOMEM');
    expect(failed.out.fail_injected).toBe(1);
    const ok = await step(a, 'ioas_alloc', { fd }, '0');
    expect(ok.out.fail_injected).toBeUndefined();
    await step(a, 'close', { fd }, '0');
  });

  it('exec keeps the named fds, drops the others, and the new image answers', async () => {
    const a = target.actor('execer');
    const before = await step(a, 'getpid', {}, '0');
    const kept = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const dropped = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const r = await step(a, 'exec', { keep: [kept] }, '0');
    expect(r.out.pid).toBe(before.out.pid);
    expect(r.out.fds).toEqual([kept]);
    await step(a, 'ioas_alloc', { fd: kept }, '0');
    await step(a, 'ioas_alloc', { fd: dropped }, 'EBADF');
  });
});

describe('kernel log capture', () => {
  it('attaches a real WARN to the step that caused it: CHANGE_PROCESS after the old mm died (UAPI-FACTS U1)', async () => {
    // MM accounting charges mm->locked_vm of the mapper. The mapper execs, so its old mm
    // is gone; the child's CHANGE_PROCESS charges itself, then fails to uncharge the dead
    // mm (PAGES:update_mm_locked_vm: mmget_not_zero fails, -EINVAL) and hits WARN_ON(r)
    // in IOAS:iommufd_ioas_change_process, which still moves the owner and returns EINVAL.
    const a = target.actor('mapper');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    await step(a, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
    await step(a, 'option', { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: 1 }, '0');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    await step(a, 'mock_domain', { fd, ioas }, '0');
    const mfd = outNum(await step(a, 'memfd_create', { size: 16 * 4096 }, '0'), 'fd');
    await step(a, 'ioas_map_file', { fd, ioas, mfd, length: 4096 }, '0');
    await step(a, 'fork', { child: 'holder' }, '0');
    const b = target.actor('holder');
    await step(a, 'exec', { keep: [fd] }, '0');
    const r = await b.call('ioas_change_process', { fd });
    expect(r.errno).toBe('EINVAL');
    expect(r.splat).toMatch(/WARNING: drivers\/iommu\/iommufd\/ioas\.c:\d+ at iommufd_ioas_change_process/);
    expect(r.splat).toMatch(/---\[ end trace/);
    // the owner did change: the holder is charged now; the next step carries no splat
    const after = await step(b, 'proc_status', {}, '0');
    expect([after.out.vm_pin_kb, after.out.vm_lck_kb]).toEqual([4, 4]);
    // observed on 7.3.4: last_npinned stayed 0, so unmapping never uncharges the holder
    await step(b, 'ioas_unmap', { fd, ioas, iova: 0, length: 0xffff_ffff_ffff_ffffn }, '0');
    const leaked = await step(b, 'proc_status', {}, '0');
    expect([leaked.out.vm_pin_kb, leaked.out.vm_lck_kb]).toEqual([4, 4]);
  });
});

describe('a dead target', () => {
  it('is reported to the call in flight and to later calls, and can be restarted', async () => {
    const a = target.actor('victim');
    await step(a, 'getpid', {}, '0');
    const inFlight = a.call('sleep', { ms: 60_000 }, { timeoutMs: 60_000 });
    const reason = await target.killInit();
    expect(reason).toMatch(/Kernel panic - not syncing: Attempted to kill init/);
    const r = await inFlight;
    expect(r.status).toBe('dead');
    expect(r.splat).toMatch(/Kernel panic/);
    expect(target.deathReason).toBe(reason);
    await expect(a.call('getpid', {})).rejects.toThrow(TargetDeadError);
    await target.restart();
    expect(target.deathReason).toBeUndefined();
    await step(target.actor('victim'), 'open', { path: '/dev/iommu' }, '0');
  });
});
