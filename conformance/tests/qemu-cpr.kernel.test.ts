// QEMU's live update on 7.3.4 (spec/findings/qemu-cpr.md): the exec-handoff model's QEMU cpr
// sequences replayed through the shim (cpr-exec under MM accounting, where F1 fires at the new
// QEMU's probe; cpr-transfer as root, where F2 follows the later unmap), and two more probes of
// F1 (spec/conformance.md "Kernel findings"): IOMMU_IOAS_CHANGE_PROCESS after the mapper's exec, with MM
// accounting, fails the uncharge of the dead mm and WARNs
//  - with no page pinned at all (PAGES:update_mm_locked_vm calls mmget_not_zero() before it
//    looks at npages; the model's prediction: test/models/exec-handoff.test.ts, "F1 needs no
//    pinned page"), on the default test kernel;
//  - through /dev/vfio/vfio, whose ctx MM:iommufd_fops_open gives MM accounting when iommufd
//    provides the VFIO container (CONFIG_IOMMUFD_VFIO_CONTAINER), on the compat flavour
//    conformance/kernel/vfio-mc-compat.config (built by `npm run kernel:build -- --fragment
//    $PWD/conformance/kernel/vfio-mc-compat.config`).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findModel } from '../../explorer/registry.ts';
import { conformanceDir } from '../cache.ts';
import { allowList, type ConformRun, formatConformReport, planRun, runConformance } from '../conform.ts';
import { cachedKernel } from '../kernel/build.ts';
import { type Actor, openTarget, outNum, type Target } from '../target.ts';
import { generatePaths } from '../paths.ts';
import { PAGE_SIZE, step, vm } from './steps.ts';

const F1_WARN = /WARNING: drivers\/iommu\/iommufd\/ioas\.c:\d+ at iommufd_ioas_change_process/;

/** exec keeping the iommufd and the memfd; root's exec gives CAP_IPC_LOCK back, so drop it again. */
async function execKeeping(a: Actor, fds: number[]) {
  await step(a, 'exec', { keep: fds }, '0');
  await step(a, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
}

/** The image's CHANGE_PROCESS: F1 (EINVAL with the WARN), then a retry that finds nothing to move. */
async function expectF1(a: Actor, fd: number) {
  const r = await a.call('ioas_change_process', { fd });
  expect(r.errno).toBe('EINVAL');
  expect(r.splat).toMatch(F1_WARN);
  await step(a, 'ioas_change_process', { fd }, '0');
}

async function plan(variant: string): Promise<ConformRun> {
  const m = await findModel('exec-handoff');
  return planRun(m, variant, generatePaths(m.variant(variant)));
}

describe('on the default test kernel', () => {
  let target: Target;
  const runs: Record<string, ConformRun> = {};
  beforeAll(async () => {
    runs.execMm = await plan('qemu-cpr-exec-iommufd-mm');
    runs.transferNone = await plan('qemu-cpr-transfer-iommufd-none');
    target = await openTarget({ kind: 'qemu', allow: [...new Set(Object.values(runs).flatMap(allowList))] });
  });
  afterAll(async () => {
    await target?.close();
  });

  it('cpr-exec, MM accounting: F1 at the new QEMU connect probe, post_load 0, the charge leaks after an unmap', async () => {
    const r = await runConformance(runs.execMm, target);
    // The one unreplayable path is the failing execvp (the shim's exec cannot fail on purpose).
    const replayed = r.paths.filter((p) => p.status !== 'unreplayable');
    expect(
      replayed.every((p) => p.status === 'match'),
      formatConformReport(r),
    ).toBe(true);
    const steps = replayed.flatMap((p) => p.steps);
    const warned = steps.filter((s) => s.splat);
    expect(warned.map((s) => [s.event.type, s.observed])).toEqual([['ImageProbeChangeProcess', 'EINVAL']]);
    expect(warned[0].splat).toMatch(F1_WARN);
    // After the unmap of one of the two pages the image is still charged for two (VmLck 8 kB).
    const unmap = steps.find((s) => s.event.type === 'ImageUnmap');
    const status = unmap!.ops.find((o) => o.op === 'proc_status')!.out!;
    expect([status.vm_pin_kb, status.vm_lck_kb]).toEqual([8, 8]);
  });

  it('cpr-transfer as root (NONE pages): ownership new → old → new, and VmPin of the new QEMU goes negative on unmap (F2)', async () => {
    const r = await runConformance(runs.transferNone, target);
    expect(
      r.paths.every((p) => p.status === 'match'),
      formatConformReport(r),
    ).toBe(true);
    const unmap = r.paths.flatMap((p) => p.steps).find((s) => s.event.type === 'ImageUnmap');
    const image = unmap!.ops.find((o) => o.op === 'proc_status' && String(o.args.actor).endsWith('-image'));
    // task_mem prints the unsigned counter: -4 kB.
    expect(String(image!.out!.vm_pin_kb)).toBe('18446744073709551612');
  });

  it('F1 with zero pinned pages: MAP_FILE into an IOAS without a domain pins nothing; after exec CHANGE_PROCESS is still EINVAL with the WARN', async () => {
    const a = target.actor('lazy');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    await step(a, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
    await step(a, 'option', { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: 1 }, '0');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    const mfd = outNum(await step(a, 'memfd_create', { name: 'guest', size: PAGE_SIZE }, '0'), 'fd');
    await step(a, 'ioas_map_file', { fd, ioas, mfd, start: 0, length: PAGE_SIZE }, '0');
    // no domain and no access: nothing is pinned, nothing charged
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 0 });
    await execKeeping(a, [fd, mfd]);
    await expectF1(a, fd);
    expect(await vm(a, a.name)).toEqual({ pin: 0, lck: 0 });
  });
});

describe('F1 through /dev/vfio/vfio (the compat flavour)', () => {
  const fragment = join(conformanceDir, 'kernel', 'vfio-mc-compat.config');
  let target: Target;
  beforeAll(async () => {
    const build = cachedKernel(fragment);
    if (!build) throw new Error(`no compat kernel: run npm run kernel:build -- --fragment ${fragment}`);
    target = await openTarget({ kind: 'qemu', kernel: build.bzImage });
  });
  afterAll(async () => {
    await target?.close();
  });

  it('the compat ctx defaults to MM accounting, and its CHANGE_PROCESS after exec is F1', async () => {
    const a = target.actor('compat');
    const fd = outNum(await step(a, 'open', { path: '/dev/vfio/vfio' }, '0'), 'fd');
    await step(a, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
    const mode = await step(a, 'option', { fd, option_id: 'RLIMIT_MODE', op: 'GET' }, '0');
    expect(Number(mode.out.val64)).toBe(1); // process (MM) accounting, as VFIO's type1
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    await step(a, 'mock_domain', { fd, ioas }, '0');
    const mfd = outNum(await step(a, 'memfd_create', { name: 'guest', size: PAGE_SIZE }, '0'), 'fd');
    await step(a, 'ioas_map_file', { fd, ioas, mfd, start: 0, length: PAGE_SIZE }, '0');
    expect(await vm(a, a.name)).toEqual({ pin: 4, lck: 4 });
    await execKeeping(a, [fd, mfd]);
    await expectF1(a, fd);
    // the owner moved although the call failed: the image is charged
    expect(await vm(a, a.name)).toEqual({ pin: 4, lck: 4 });
  });
});
