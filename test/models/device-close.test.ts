/**
 * The device-close model (machines/device-close.ts, spec/device-close.md):
 * each variant's verdict at its default bounds, each invariant shown firing
 * with its shortest counterexample, the BUG_ON retry bound's shape, and
 * selftest-style scenarios (the predicted result asserted at each step).
 */
import { describe, expect, it } from 'vitest';
import { type AnyStateMachine, createActor } from 'xstate';
import { unexplained } from '../../explorer/coverage.ts';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { formatStepLabel } from '../../explorer/report-text.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, { type Ctx, type Design, type Ev, machineFor } from '../../machines/device-close.ts';
import { exploreOnce, traceOf as traceOfSteps, violated } from './support.ts';

const traceOf = (r: ExploreResult, property: string) =>
  traceOfSteps(r, property, (s) => {
    const e = s.event as Ev;
    return e.dma !== undefined
      ? `${e.type}(${e.dma})`
      : e.range !== undefined
        ? `${e.type}(${e.range})`
        : e.type;
  });

const run = exploreOnce(model);

/** Another design or a mutant, explored to `depth` (a mutant's state space need not be finite). */
const runDesign = (over: Partial<Design>, depth = 8) =>
  explore({ ...model.variant(), machine: machineFor(over) } as ResolvedVariant, { depth });

/** Map dma 0, close the device (the driver's close_device leaves its pin), then unmap it. */
const PIN_LEFT_AT_CLOSE = [
  'VmmMapDma(0)',
  'VmmCloseDevice',
  'MdevPinPages(0)',
  'ReleaseCloseDevice',
  'ReleaseUnregisterLock',
  'ReleaseUnregisterListLock',
  'ReleaseFinish',
  'VmmCloseDeviceReturn',
  'VmmUnmapDma(0)',
];

describe('device-close verdicts at the default bounds', () => {
  it.each(model.variantNames)('%s: finds exactly what it expects, completely', async (name) => {
    const variant = model.variant(name);
    const r = await run(name);
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual([...(variant.expect?.violated ?? [])].sort());
    if (variant.expect?.states !== undefined) expect(r.states).toBe(variant.expect.states);
  });

  it.each(model.variantNames)(
    '%s: every transition fires or is listed as unreachable, and every listed one never fires',
    async (name) => {
      const r = await run(name);
      expect(unexplained(r.coverage)).toEqual([]);
      expect(r.coverage.staleUnreachable).toEqual([]);
    },
  );
});

const labelsOf = (r: ExploreResult, property: string) => traceOfSteps(r, property, (s) => formatStepLabel(s));

const waitsOf = (r: ExploreResult, property: string) =>
  Object.fromEntries(
    (r.violations.find((v) => v.property === property)?.waiting ?? []).map((w) => [w.actor, w.for]),
  );

describe("in the thread's words (issue 11)", () => {
  it('two-unmappers: the ioctls, the lock step, and each side of the inversion waiting for the other', async () => {
    const r = await run('two-unmappers');
    expect(labelsOf(r, 'deadlock')).toEqual([
      'ioctl(container, VFIO_IOMMU_MAP_DMA, dma0) = 0',
      'mdev: vfio_pin_pages(dma0) = 0',
      'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0) … blocks',
      'vmm: vfio_notify_dma_unmap: mutex_lock(device_list_lock)',
      'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0) … blocks',
    ]);
    expect(waitsOf(r, 'deadlock')).toEqual({
      vmm:
        "in mdev's dma_unmap callback (holding device_list_lock): vfio_unpin_pages(dma0) on " +
        'iommu->lock, held by unmapper',
      mdev: 'in vfio_unpin_pages(dma0): on iommu->lock, held by unmapper',
      release: 'not blocked',
      unmapper: 'in vfio_notify_dma_unmap (holding iommu->lock): on device_list_lock, held by vmm',
    });
  });

  it('the BUG is the relock of the walk, and the close path reads as the kernel calls it', async () => {
    const bug = labelsOf(await run('repin-compliant'), 'noKernelBug');
    expect(bug.at(-1)).toBe('vmm: vfio_notify_dma_unmap: mutex_lock(iommu->lock), goto again = BUG');
    expect(labelsOf(await run('notify-if-pinned-late'), 'noKernelBug')).toEqual([
      'ioctl(container, VFIO_IOMMU_MAP_DMA, dma0) = 0',
      'close(device fd) … blocks',
      'mdev: vfio_pin_pages(dma0) = 0',
      'release: vfio_device_fops_release → ops->close_device',
      'release: unregister_device: mutex_lock(iommu->lock)',
      'release: unregister_device: mutex_lock(device_list_lock)',
      'release: vfio_df_close: open_count--',
      '… close(device fd) = 0',
      'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0) = BUG',
    ]);
  });

  it('no dma is notified twice with a compliant driver: even BUG_ON(++retries > 0) never fires', async () => {
    for (const over of [{}, { notify: 'always-once' as const }]) {
      const r = await explore({ ...model.variant(), machine: machineFor({ ...over, maxRetries: 0 }) });
      expect(r.complete).toBe(true);
      expect(r.properties.find((p) => p.name === 'noKernelBug')?.status).toBe('holds');
    }
  });

  it('the witnesses fail where the driver never pins (complete search)', async () => {
    const v = model.variant();
    const r = await explore({ ...v, events: (s) => v.events(s).filter((e) => e.type !== 'MdevPinPages') });
    const status = (name: string) => r.properties.find((p) => p.name === name)?.status;
    expect(r.complete).toBe(true);
    expect(status('mdevPins')).toBe('violated');
    expect(status('unmapNotifiesTheDriver')).toBe('violated');
    expect(status('unmapReturns')).toBe('holds');
    expect(status('closeCompletes')).toBe('holds');
  });
});

describe('seed 002: who sees a stale driver view', () => {
  it('notify-if-pinned: a range the driver never pinned is unmapped silently (2 steps)', async () => {
    const r = await run('notify-if-pinned-compliant');
    expect(r.violations.find((v) => v.property === 'driverViewConsistent')?.kind).toBe('invariant');
    expect(traceOf(r, 'driverViewConsistent')).toEqual(['VmmMapDma(0)', 'VmmUnmapDma(0)']);
  });

  it('notify-always-once (the patch as written): UNMAP of both ranges announces only the first (7 steps)', async () => {
    const r = await run('notify-always-once-compliant');
    expect(traceOf(r, 'driverViewConsistent')).toEqual([
      'VmmMapDma(0)',
      'VmmMapDma(1)',
      'VmmUnmapDma(all)',
      'VmmUnmapListLock',
      'VmmUnmapCallback',
      'VmmUnmapListUnlock',
      'VmmUnmapRelock',
    ]);
  });

  it('notify-always with a re-pinning guest: pin and unpin inside the window hide the range (8 steps)', async () => {
    const r = await run('repin-compliant');
    expect(traceOf(r, 'driverViewConsistent')).toEqual([
      'VmmMapDma(0)',
      'VmmUnmapDma(0)',
      'VmmUnmapListLock',
      'VmmUnmapCallback',
      'VmmUnmapListUnlock',
      'MdevPinPages(0)',
      'MdevUnpinPages(0)',
      'VmmUnmapRelock',
    ]);
  });
});

describe('seed 004: the BUG_ON', () => {
  it.each(['notify-if-pinned-non-compliant', 'notify-if-pinned-late', 'notify-always-late'])(
    '%s: a pin left after close_device makes the next UNMAP spin into the BUG (9 steps)',
    async (name) => {
      const r = await run(name);
      expect(r.violations.find((v) => v.property === 'noKernelBug')?.kind).toBe('invariant');
      expect(traceOf(r, 'noKernelBug')).toEqual(PIN_LEFT_AT_CLOSE);
    },
  );

  it('the re-pin race: R+1 lost races reach the BUG, 2 + 5(R+1) steps, for R = 1, 2, 3 and the kernel 10', async () => {
    for (const R of [1, 2, 3, 10]) {
      const r = await runDesign({ notify: 'always', repin: true, maxRetries: R }, 100);
      expect(r.complete).toBe(true);
      const t = traceOf(r, 'noKernelBug');
      expect(t).toHaveLength(2 + 5 * (R + 1));
      expect(t.filter((e) => e === 'MdevPinPages(0)')).toHaveLength(R + 1);
      expect(t.at(-1)).toBe('VmmUnmapRelock');
    }
  });

  it('a compliant driver that does not re-pin never reaches it (complete search)', async () => {
    for (const name of ['notify-if-pinned-compliant', 'notify-always-compliant', 'two-unmappers']) {
      const r = await run(name);
      expect(r.complete).toBe(true);
      expect(r.properties.find((p) => p.name === 'noKernelBug')?.status).toBe('holds');
    }
  });
});

describe('locks: two UNMAP_DMA threads invert iommu->lock and device_list_lock', () => {
  it('deadlock in 5 steps', async () => {
    const r = await run('two-unmappers');
    expect(r.violations.find((v) => v.property === 'deadlock')?.kind).toBe('deadlock');
    expect(traceOf(r, 'deadlock')).toEqual([
      'VmmMapDma(0)',
      'MdevPinPages(0)',
      'VmmUnmapDma(0)',
      'VmmUnmapListLock',
      'UnmapperUnmapDma(0)',
    ]);
  });
});

describe('two UNMAP_DMA threads with the U6 patch', () => {
  it('no deadlock: only the stale view of an unpinned range is left, as with one unmapper', async () => {
    expect(violated(await run('two-unmappers-fixed'))).toEqual(
      violated(await run('notify-if-pinned-compliant')),
    );
  });
});

describe('every device close completes', () => {
  it('holds wherever the kernel neither deadlocks nor BUGs during a close', async () => {
    for (const name of ['notify-always-compliant', 'notify-if-pinned-non-compliant', 'two-unmappers']) {
      const r = await run(name);
      expect(r.properties.find((p) => p.name === 'everyCloseCompletes')?.status).toBe('holds');
    }
  });

  it('fails when the BUG halts the machine while a close is in progress (two-unmappers-reuse)', async () => {
    const r = await run('two-unmappers-reuse');
    const v = r.violations.find((x) => x.property === 'everyCloseCompletes');
    expect(v?.kind).toBe('liveness');
    expect(traceOf(r, 'everyCloseCompletes')).toContain('VmmCloseDevice');
    expect(v?.trace.some((s) => s.result === 'BUG')).toBe(true);
  });
});

describe('an invariant that holds in every variant fires on a mutant', () => {
  it('unmapLeavesNoPins: a walk that removes a dma with a page pinned (3 steps)', async () => {
    const r = await runDesign({ mutate: 'removeWithPins' }, 4);
    expect(traceOf(r, 'unmapLeavesNoPins')).toEqual(['VmmMapDma(0)', 'MdevPinPages(0)', 'VmmUnmapDma(0)']);
  });
});

// ------------------------------------------------------------------ scenarios

function scenario(machine: AnyStateMachine) {
  const actor = createActor(machine).start();
  const ctx = () => actor.getSnapshot().context as Ctx;
  return {
    ctx,
    step(ev: Ev, who?: string, want?: string) {
      expect(actor.getSnapshot().can(ev), `${ev.type} enabled`).toBe(true);
      actor.send(ev);
      if (who !== undefined) expect(ctx().ret[who], `${ev.type} result`).toBe(want);
    },
    disabled(ev: Ev) {
      expect(actor.getSnapshot().can(ev), `${ev.type} disabled`).toBe(false);
    },
  };
}

function closeDevice(s: ReturnType<typeof scenario>) {
  s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
  s.step({ type: 'ReleaseCloseDevice' });
  s.step({ type: 'ReleaseUnregisterLock' });
  s.step({ type: 'ReleaseUnregisterListLock' });
  s.step({ type: 'ReleaseFinish' });
  s.step({ type: 'VmmCloseDeviceReturn' }, 'vmm', '0');
}

describe('scenarios', () => {
  it('pin_is_charged_without_a_domain_and_unmap_notifies', () => {
    const s = scenario(machineFor({}));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    expect(s.ctx().mms.mm0.lockedVm).toBe(0); // no domain: MAP_DMA pins nothing
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    expect(s.ctx().mms.mm0.lockedVm).toBe(1); // vfio_pin_page_external charges (do_accounting)
    s.step({ type: 'VmmUnmapDma', range: 'all' }, 'vmm', 'blocked');
    s.step({ type: 'VmmUnmapListLock' });
    s.step({ type: 'VmmUnmapCallback' });
    s.step({ type: 'VmmUnmapListUnlock' });
    s.step({ type: 'VmmUnmapRelock' }, 'vmm', '0');
    expect(s.ctx().mms.mm0.lockedVm).toBe(0);
    expect(s.ctx().drv.view).toEqual([false, false]);
  });

  it('unmap_of_nothing_succeeds', () => {
    const s = scenario(machineFor({}));
    s.step({ type: 'VmmUnmapDma', range: 1 }, 'vmm', '0'); // v2: a range covering no dma, size 0
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', 'EEXIST');
  });

  it('pin_of_an_unmapped_range_is_einval', () => {
    const s = scenario(machineFor({ repin: true }));
    s.step({ type: 'MdevPinPages', dma: 1 }, 'mdev', 'EINVAL');
  });

  it('non_compliant_close_leaves_a_pin_and_the_next_unmap_is_a_bug', () => {
    const s = scenario(machineFor({ driver: 'non-compliant' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    closeDevice(s);
    expect(s.ctx().t1.devices).toEqual([]); // unregistered: nobody to notify
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', 'BUG');
    expect(s.ctx().kernelBug).toBe(true);
    s.disabled({ type: 'VmmMapDma', dma: 1 }); // the machine has stopped
    s.step({ type: 'MdevHalt' });
  });

  it('non_compliant_callback_bugs_on_the_twelfth_walk_of_the_same_dma', () => {
    const s = scenario(machineFor({ driver: 'non-compliant' })); // the kernel's bound, 10
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', 'blocked'); // retries = 0
    for (let retry = 1; retry <= 11; retry++) {
      s.step({ type: 'VmmUnmapListLock' });
      s.step({ type: 'VmmUnmapCallback' }); // ignored by the driver
      s.step({ type: 'VmmUnmapListUnlock' });
      s.step({ type: 'VmmUnmapRelock' }, 'vmm', retry <= 10 ? 'blocked' : 'BUG'); // ++retries > 10
    }
    expect(s.ctx().kernelBug).toBe(true);
  });

  it('late_worker_after_the_last_close_only_warns', () => {
    const s = scenario(machineFor({ driver: 'late' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    closeDevice(s); // close_device only queued the unpin
    s.step({ type: 'MdevUnpinPages', dma: 0 }, 'mdev', 'WARN'); // vfio_assert_device_open fails
    expect(s.ctx().t1.dmas[0].pin).not.toBeNull();
  });

  it('late_worker_before_the_last_close_ends_unpins', () => {
    const s = scenario(machineFor({ driver: 'late' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
    s.step({ type: 'ReleaseCloseDevice' });
    s.step({ type: 'MdevUnpinPages', dma: 0 }, 'mdev', '0'); // open_count is still 1
    expect(s.ctx().t1.dmas[0].pin).toBeNull();
  });

  it('retries_reset_when_the_walk_moves_to_another_dma', () => {
    const s = scenario(machineFor({ repin: true, notify: 'if-pinned', maxRetries: 0 }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'MdevPinPages', dma: 1 }, 'mdev', '0');
    s.step({ type: 'VmmUnmapDma', range: 'all' }, 'vmm', 'blocked'); // notify dma 0, retries 0
    s.step({ type: 'VmmUnmapListLock' });
    s.step({ type: 'VmmUnmapCallback' });
    s.step({ type: 'VmmUnmapListUnlock' });
    s.step({ type: 'VmmUnmapRelock' }, 'vmm', 'blocked'); // dma 0 gone, dma 1 pinned: a new dma_last
    expect(s.ctx().walk.vmm?.dmaLast).toBe(1);
    expect(s.ctx().walk.vmm?.retries).toBe(0);
  });
});

describe('sizes: the parameters dmas and unmappers', () => {
  it('four dmas: notify-always-compliant still holds completely, every transition explained', async () => {
    const r = await explore(model.variant('notify-always-compliant', { dmas: 4 }));
    expect(r.complete).toBe(true);
    expect(r.states).toBe(6_489);
    expect(violated(r)).toEqual([]);
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('one dma: the patch as written is harmless, its flaw needs a second dma in the range', async () => {
    const r = await explore(model.variant('notify-always-once-compliant', { dmas: 1 }));
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual([]);
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('three UNMAP_DMA threads: two deadlock while the vmm waits in close(), which then never returns', async () => {
    const v = model.variant('two-unmappers', { dmas: 1, unmappers: 3 });
    const r = await explore(v);
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual(['deadlock', 'driverViewConsistent', 'everyCloseCompletes']);
    const lasso = r.violations.find((x) => x.property === 'everyCloseCompletes');
    expect(lasso?.trace.map((s) => s.actor)).toEqual([
      'vmm',
      'vmm',
      'mdev',
      'unmapper',
      'unmapper',
      'unmapper2',
    ]);
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('an out-of-range size or an unknown parameter is one clear error', () => {
    expect(() => model.variant('two-unmappers', { unmappers: 4 })).toThrow(
      "model 'device-close': unmappers must be an integer from 2 to 3, got 4",
    );
    expect(() => model.variant('two-unmappers', { dmas: 0 })).toThrow(
      "model 'device-close': dmas must be an integer from 1 to 8, got 0",
    );
    expect(() => model.variant('two-unmappers', { mdevs: 2 })).toThrow(
      "model 'device-close' has no parameter 'mdevs' (parameters: dmas, unmappers)",
    );
  });
});
