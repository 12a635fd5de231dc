// The pinning test mdev on the real kernel (issue 13): U6 on 7.3.4 (the deadlock trace with
// --strict: both calls stay blocked, lockdep attached), the mdev's shim ops, and the
// device-close model replayed with its driver steps (a compliant driver: every path matches; a
// late one: the BUG_ON after 10 retries where the model predicts it, a fresh VM after it).
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allowList,
  type ConformRun,
  formatConformReport,
  loadPaths,
  planRun,
  runConformance,
  uuidFor,
} from '../conform.ts';
import { openTarget, outNum, type Target } from '../target.ts';
import { findModel } from '../../explorer/registry.ts';
import { PAGE_SIZE, step } from './steps.ts';

const U6_HOTPLUG = fileURLToPath(
  new URL('../../test/conformance/traces/u6-hotplug-deadlock.paths.json', import.meta.url),
);

let target: Target;
const runs: Record<string, ConformRun> = {};
const UUID = uuidFor(900, 0);

async function plan(model: string, variant: string, paths?: string): Promise<ConformRun> {
  const m = await findModel(model);
  return planRun(m, variant, await loadPaths(m.variant(variant), paths));
}

beforeAll(async () => {
  runs.compliant = await plan('device-close', 'notify-if-pinned-compliant');
  runs.late = await plan('device-close', 'notify-if-pinned-late');
  runs.u6 = await plan('container', 'current-hotplug', U6_HOTPLUG);
  const allow = [...new Set([...Object.values(runs).flatMap(allowList), `mdev:${UUID}`])];
  target = await openTarget({ kind: 'qemu', allow });
});

afterAll(async () => {
  await target?.close();
});

// First, on a fresh boot: lockdep reports a lock cycle only once per boot.
describe('U6 on Linux 7.3.4', () => {
  it('the deadlock trace (a second device opened during the unmap notification) stays blocked, lockdep reports the cycle', async () => {
    const r = await runConformance(runs.u6, target, { strict: true });
    const text = formatConformReport(r);
    expect(r.paths[0].status, text).toBe('match');
    expect(r.paths[0].reason, text).toContain('deadlock');
    const lockdep = r.paths[0].steps.flatMap((s) => s.lockdep ?? []);
    expect(lockdep.join('\n'), text).toContain('possible circular locking dependency');
    // the deadlocked processes cannot be killed: the rest of the file gets a fresh VM
    await target.restart();
  });
});

describe('the pinning test mdev through the shim', () => {
  it('pin_create, the device-specific ioctl (mode, pin, query) and the worker line, refused lines with EINVAL', async () => {
    const a = target.actor('pin');
    const created = await step(a, 'pin_create', { uuid: UUID }, '0');
    const container = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    const group = outNum(await step(a, 'open', { path: String(created.out.group_path) }, '0'), 'fd');
    await step(a, 'vfio_group_set_container', { fd: group, container }, '0');
    await step(a, 'vfio_set_iommu', { fd: container, type: 'VFIO_TYPE1v2_IOMMU' }, '0');
    const device = outNum(
      await step(a, 'vfio_group_get_device_fd', { fd: group, name: UUID }, '0'),
      'device_fd',
    );
    const buf = outNum(await step(a, 'mmap', { length: PAGE_SIZE }, '0'), 'addr');
    await step(a, 'vfio_map_dma', { fd: container, vaddr: buf, iova: 0x100000, size: PAGE_SIZE }, '0');
    await step(a, 'pin_cmd', { fd: device, op: 'MODE', data: 'COMPLIANT' }, '0');
    const pinned = await step(
      a,
      'pin_cmd',
      { fd: device, op: 'PIN', iova: 0x100000, length: PAGE_SIZE },
      '0',
    );
    expect(Number(pinned.out.result)).toBe(1);
    const q = await step(a, 'pin_cmd', { fd: device, op: 'QUERY', iova: 0x100000 }, '0');
    expect(Number(q.out.result)).toBe((1 << 8) | 1); // one pin, in the driver's view
    await step(a, 'pin_worker', { uuid: UUID, line: 'unpin 0x100000 0x1000' }, '0');
    await step(a, 'pin_worker', { uuid: UUID, line: 'pin 0x900000 0x1000' }, 'EINVAL'); // no dma there
    await step(a, 'pin_worker', { uuid: UUID, line: 'mode sloppy' }, 'EINVAL');
    await step(a, 'close', { fd: device }, '0');
    await step(a, 'exit', { code: 0 }, '0');
    await step(target.actor('pin-admin'), 'pin_remove', { uuid: UUID }, '0');
  });
});

describe('device-close on Linux 7.3.4 with the driver steps', () => {
  it('a compliant driver: every path matches, every reachable transition replayed', async () => {
    const r = await runConformance(runs.compliant, target);
    const text = formatConformReport(r);
    expect(
      r.paths.filter((p) => p.status !== 'match'),
      text,
    ).toEqual([]);
    expect(r.coverage.matched, text).toBe(r.coverage.covered);
    for (const k of ['MdevPinPages→0', 'MdevUnpinPages→0', 'VmmUnmapDma→blocked'])
      expect(r.coverage.results[k], `${k}\n${text}`).toBe('matched');
  });

  it('a late driver: the BUG_ON after 10 retries where the model predicts it, a WARN for the unpin after close', async () => {
    const r = await runConformance(runs.late, target);
    const text = formatConformReport(r);
    expect(
      r.paths.filter((p) => p.status !== 'match' && p.status !== 'kernel-bug'),
      text,
    ).toEqual([]);
    const bugs = r.paths.filter((p) => p.status === 'kernel-bug');
    expect(bugs.length, text).toBeGreaterThan(0);
    expect(bugs[0].steps.find((s) => s.observed === 'BUG')?.splat).toContain(
      'kernel BUG at drivers/vfio/vfio_iommu_type1.c',
    );
    expect(r.coverage.results['MdevUnpinPages→WARN'], text).toBe('matched');
    expect(r.coverage.matched, text).toBe(r.coverage.covered);
  });
});
