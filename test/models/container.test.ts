/**
 * The container model (machines/container.ts, spec/container.md): each
 * variant's verdict at its default bounds, each invariant shown firing with
 * its shortest counterexample, and selftest-style scenarios (one scenario a
 * test, the predicted errno asserted at each step).
 */
import { describe, expect, it } from 'vitest';
import { type AnyStateMachine, createActor } from 'xstate';
import { unexplained } from '../../explorer/coverage.ts';
import { explore } from '../../explorer/explore.ts';
import type { ModelSnapshot, ResolvedVariant } from '../../explorer/model.ts';
import { formatStepLabel, formatViolation } from '../../explorer/report-text.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, {
  CONTAINER_EVENT_TYPES,
  type Ctx,
  containerLabel,
  type Design,
  type Ev,
  machineFor,
} from '../../machines/container.ts';
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

/** Each variant explored once at its default bounds, shared by the tests below. */
const run = exploreOnce(model);

/**
 * A variant of the model with its machine replaced by a mutant or another
 * design, explored to a small depth: a mutant's state space need not be
 * finite (a lost uncharge lets locked_vm grow with every map), and BFS finds
 * the shortest counterexample within the bound.
 */
const runDesign = (name: string, over: Partial<Design>) =>
  explore({ ...model.variant(name), machine: machineFor(over) } as ResolvedVariant, { depth: 6 });

describe('container verdicts at the default bounds', () => {
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

describe('seed 000 and U6: the deadlocks, shortest first', () => {
  it('vfio-wait: close waits for a pin that waits for a vaddr only the closer could supply (4 steps)', async () => {
    const r = await run('vfio-wait');
    const t = traceOf(r, 'deadlock');
    expect(t).toHaveLength(4);
    expect(t.slice(0, 2)).toEqual(['VmmMapDma(0)', 'VmmUnmapVaddr(0)']);
    expect([...t.slice(2)].sort()).toEqual(['MdevPinPages(0)', 'VmmCloseDevice']);
  });

  it('close-flag: a pin that starts after the close notification waits without the flag (5 steps)', async () => {
    const r = await run('close-flag');
    expect(traceOf(r, 'deadlock')).toEqual([
      'VmmMapDma(0)',
      'VmmUnmapVaddr(0)',
      'VmmCloseDevice',
      'ReleaseNotifyClose',
      'MdevPinPages(0)',
    ]);
  });

  it('current-hotplug: register_device holds iommu->lock while the notification holds device_list_lock (5 steps)', async () => {
    const r = await run('current-hotplug');
    expect(traceOf(r, 'deadlock')).toEqual([
      'VmmMapDma(0)',
      'MdevPinPages(0)',
      'VmmUnmapDma(0)',
      'VmmUnmapListLock',
      'HotplugOpenDevice',
    ]);
  });
});

describe('U6 with the patch (conformance/kernel/patches/0003): device_list_lock first everywhere', () => {
  it('the U6 interleaving goes on: the hotplug waits for device_list_lock holding nothing, the callback unpins', () => {
    const s = scenario(machineFor({ hotplug: true, lockOrder: 'list-first' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', 'blocked');
    s.step({ type: 'VmmUnmapListLock' }); // mutex_unlock(iommu->lock)
    s.step({ type: 'VmmUnmapListLock' }); // mutex_lock(device_list_lock)
    expect(s.ctx().t1).toMatchObject({ lock: null, listLock: 'vmm' });
    s.disabled({ type: 'HotplugOpenDevice' }); // register_device waits for device_list_lock first
    s.step({ type: 'VmmUnmapCallback' }); // the driver's vfio_unpin_pages() gets iommu->lock
    expect(s.ctx().t1.dmas[0].pin).toBeNull();
    s.step({ type: 'VmmUnmapListUnlock' });
    s.step({ type: 'HotplugOpenDevice' }, 'hotplug', 'blocked');
    s.step({ type: 'VmmUnmapRelock' }, 'vmm', '0');
    s.step({ type: 'HotplugRegisterListLock' }, 'hotplug', '0');
    expect(s.ctx().t1.devices).toEqual(['dev2', 'mdev']);
  });

  it('current-hotplug-fixed holds every property, current-hotplug deadlocks', async () => {
    expect(violated(await run('current-hotplug-fixed'))).toEqual([]);
    expect(violated(await run('current-hotplug'))).toEqual(['deadlock']);
  });
});

/** What each still-running actor waits for at the end of a counterexample. */
const waitsOf = (r: ExploreResult, property: string) =>
  Object.fromEntries(
    (r.violations.find((v) => v.property === property)?.waiting ?? []).map((w) => [w.actor, w.for]),
  );

const labelsOf = (r: ExploreResult, property: string) => traceOfSteps(r, property, (s) => formatStepLabel(s));

describe("the deadlocks in the thread's words (issue 11)", () => {
  it('vfio-wait: the ioctls by name, and what each blocked actor waits for', async () => {
    const r = await run('vfio-wait');
    const t = labelsOf(r, 'deadlock');
    expect(t.slice(0, 2)).toEqual([
      'ioctl(container, VFIO_IOMMU_MAP_DMA, dma0) = 0',
      'ioctl(container, VFIO_IOMMU_UNMAP_DMA, VADDR, dma0) = 0',
    ]);
    expect([...t.slice(2)].sort()).toEqual([
      'close(device fd) … blocks',
      'mdev: vfio_pin_pages(dma0) … blocks',
    ]);
    expect(waitsOf(r, 'deadlock')).toEqual({
      vmm: 'in close(device fd): the last close waits for the release path (vfio_device_fops_release)',
      mdev: "in vfio_wait() for dma0's vaddr (vfio_pin_pages)",
      release: 'in ops->close_device: the driver waits for its vfio_pin_pages(dma0) to return',
    });
    // The liveness lasso that stays in the same state says the same.
    expect(waitsOf(r, 'everyCloseCompletes')).toEqual(waitsOf(r, 'deadlock'));
  });

  it('vfio-wait: the report fits 100 columns and names the ioctls and the waits', async () => {
    const r = await run('vfio-wait');
    const v = r.violations.find((x) => x.property === 'deadlock');
    const text = formatViolation(v!, ['vmm', 'mdev', 'release'], { width: 100 });
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(text).toContain('VFIO_IOMMU_UNMAP_DMA, VADDR,');
    expect(text).toContain("mdev     in vfio_wait() for dma0's vaddr (vfio_pin_pages)");
    expect(text).toContain('release  in ops->close_device: the driver waits for its vfio_pin_pages(dma0)');
  });

  it('close-flag: the release path sets the flag before the pin that then waits without it', async () => {
    const r = await run('close-flag');
    expect(labelsOf(r, 'deadlock').slice(3)).toEqual([
      'release: vfio_device_fops_release → set close_flag, wake waiters',
      'mdev: vfio_pin_pages(dma0) … blocks',
    ]);
    expect(waitsOf(r, 'deadlock').mdev).toBe("in vfio_wait() for dma0's vaddr (vfio_pin_pages)");
  });

  it('current-hotplug: each side of the ABBA waits on the lock the other holds', async () => {
    const r = await run('current-hotplug');
    expect(labelsOf(r, 'deadlock').slice(2)).toEqual([
      'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0) … blocks',
      'vmm: vfio_notify_dma_unmap: mutex_lock(device_list_lock)',
      'ioctl(dev2 group, VFIO_GROUP_GET_DEVICE_FD) … blocks',
    ]);
    expect(waitsOf(r, 'deadlock')).toEqual({
      vmm:
        "in mdev's dma_unmap callback (holding device_list_lock): vfio_unpin_pages(dma0) on " +
        'iommu->lock, held by hotplug',
      mdev: 'in vfio_unpin_pages(dma0): on iommu->lock, held by hotplug',
      release: 'not blocked',
      hotplug: 'in register_device (holding iommu->lock): on device_list_lock, held by vmm',
    });
  });

  it('every event type has a label, without a result in it', () => {
    const s = { context: model.variant().machine.config.context, value: {} } as unknown as ModelSnapshot<Ctx>;
    for (const type of CONTAINER_EVENT_TYPES) {
      const label = containerLabel({ type, dma: 0, range: 0 }, s);
      expect(label, type).toMatch(
        /^(ioctl\(|close\(|execve\(|exit\(|… close\(|(vmm|mdev|release|hotplug): )/,
      );
      expect(label, type).not.toMatch(/undefined| = /);
    }
  });
});

describe('the unreachable transitions are so for the reason given', () => {
  it('no dma is notified twice: even BUG_ON(++retries > 0) never fires in current', async () => {
    const r = await explore({ ...model.variant('current'), machine: machineFor({ maxRetries: 0 }) });
    expect(r.complete).toBe(true);
    expect(r.properties.find((p) => p.name === 'noKernelBug')?.status).toBe('holds');
  });

  it('a listed transition that fires is reported: the 7.3 list on the v6.1 machine', async () => {
    const r = await explore(
      { ...model.variant('current'), machine: machineFor({ kernel: '6.1' }) },
      { depth: 5 },
    );
    expect(r.coverage.staleUnreachable).toContain('mdev.idle#MdevPinPages[0] (fired)');
  });

  it('the witnesses fail where the driver never pins (complete search)', async () => {
    const v = model.variant('current');
    const r = await explore({ ...v, events: (s) => v.events(s).filter((e) => e.type !== 'MdevPinPages') });
    const status = (name: string) => r.properties.find((p) => p.name === name)?.status;
    expect(r.complete).toBe(true);
    expect(status('mdevPins')).toBe('violated');
    expect(status('unmapNotifiesTheDriver')).toBe('violated');
    expect(status('closeCompletes')).toBe('holds');
  });
});

describe('each invariant fires on a variant or a mutant', () => {
  it('noPinWithoutPageProvider: v6.1 pins from the new mm at the old vaddr after exec (3 steps)', async () => {
    const r = await run('vfio-wait');
    expect(r.violations.find((v) => v.property === 'noPinWithoutPageProvider')?.kind).toBe('invariant');
    expect(traceOf(r, 'noPinWithoutPageProvider')).toEqual(['VmmMapDma(0)', 'VmmExec', 'MdevPinPages(0)']);
  });

  it('accountingConserved: v6.1 moves the owner to the new mm at exec without its charge (2 steps)', async () => {
    const r = await run('vfio-wait');
    expect(traceOf(r, 'accountingConserved')).toEqual(['VmmMapDma(0)', 'VmmExec']);
  });

  it('accountingConserved: a mutant vfio_remove_dma that skips the uncharge (2 steps)', async () => {
    const r = await runDesign('current', { mutate: 'skipUncharge' });
    expect(traceOf(r, 'accountingConserved')).toEqual(['VmmMapDma(0)', 'VmmUnmapDma(0)']);
  });

  it('vaddrInvalidExcludesMdev: a mutant without the "mdev present" EBUSY (2 steps)', async () => {
    const r = await runDesign('current', { mutate: 'vaddrWithMdev' });
    expect(traceOf(r, 'vaddrInvalidExcludesMdev')).toEqual(['VmmMapDma(0)', 'VmmUnmapVaddr(0)']);
  });

  it('vaddrInvalidExcludesMdev: the v6.1 design allows both by design (2 steps)', async () => {
    const r = await runDesign('current', { kernel: '6.1' });
    expect(traceOf(r, 'vaddrInvalidExcludesMdev')).toEqual(['VmmMapDma(0)', 'VmmUnmapVaddr(0)']);
  });

  it('unmapLeavesNoPins: a mutant walk that removes a dma with pages pinned (3 steps)', async () => {
    const r = await runDesign('current', { mutate: 'removeWithPins' });
    expect(traceOf(r, 'unmapLeavesNoPins')).toEqual(['VmmMapDma(0)', 'MdevPinPages(0)', 'VmmUnmapDma(0)']);
  });

  it('everyCloseCompletes: the close that started in the vfio-wait deadlock never completes (a stutter lasso)', async () => {
    const r = await run('vfio-wait');
    const v = r.violations.find((x) => x.property === 'everyCloseCompletes');
    expect(v?.kind).toBe('liveness');
    expect(v?.trace).toHaveLength(4);
    expect(v?.cycleStart).toBe(4); // no fair actor is enabled at the end: the run stays there
    expect(traceOf(r, 'everyCloseCompletes')).toContain('VmmCloseDevice');
  });

  it('everyCloseCompletes holds in current and with the sticky close flag (complete searches)', async () => {
    for (const name of ['current', 'close-flag-sticky', 'current-hotplug']) {
      const r = await run(name);
      expect(r.properties.find((p) => p.name === 'everyCloseCompletes')?.status).toBe('holds');
    }
  });

  it('deadlock is reported as a deadlock, not an invariant', async () => {
    const r = await run('vfio-wait');
    expect(r.violations.find((v) => v.property === 'deadlock')?.kind).toBe('deadlock');
  });
});

// ------------------------------------------------------------------ scenarios

/** Drive the machine like a selftest: each event must be enabled; the actor's result is checked. */
function scenario(machine: AnyStateMachine) {
  const actor = createActor(machine).start();
  const ctx = () => actor.getSnapshot().context as Ctx;
  return {
    ctx,
    /** Send `ev`; `want` is the predicted result of `who`'s call. */
    step(ev: Ev, who?: string, want?: string) {
      expect(actor.getSnapshot().can(ev), `${ev.type} enabled`).toBe(true);
      actor.send(ev);
      if (who !== undefined) expect(ctx().ret[who], `${ev.type} result`).toBe(want);
    },
    disabled(ev: Ev) {
      expect(actor.getSnapshot().can(ev), `${ev.type} disabled`).toBe(false);
    },
    value: () => actor.getSnapshot().value as Record<string, string>,
  };
}

/** Close the mdev's device fd and run its release path to the end. */
function closeDevice(s: ReturnType<typeof scenario>) {
  s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
  s.step({ type: 'ReleaseCloseDevice' });
  s.step({ type: 'ReleaseUnregisterLock' });
  s.step({ type: 'ReleaseUnregisterListLock' });
  s.step({ type: 'ReleaseFinish' });
  s.step({ type: 'VmmCloseDeviceReturn' }, 'vmm', '0');
}

describe('scenarios, kernel 7.3', () => {
  const s0 = () => scenario(machineFor({}));

  it('vaddr_unmap_with_mdev_attached_fails', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', 'EBUSY'); // "Cannot update vaddr if mdev is present"
    expect(s.ctx().t1.dmas[0].vaddrMm).toBe('mm0');
  });

  it('map_dma_twice_fails', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', 'EEXIST');
    expect(s.ctx().mms.mm0.lockedVm).toBe(1); // pinned and charged once, by the IOMMU domain
  });

  it('unmap_with_a_pinned_page_notifies_the_driver_first', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', 'blocked'); // pfn_list not empty: notify
    s.step({ type: 'VmmUnmapListLock' });
    s.step({ type: 'VmmUnmapCallback' }); // the driver unpins under device_list_lock
    expect(s.ctx().t1.dmas[0].pin).toBeNull();
    s.step({ type: 'VmmUnmapListUnlock' });
    s.step({ type: 'VmmUnmapRelock' }, 'vmm', '0');
    expect(s.ctx().t1.dmas[0].mapped).toBe(false);
    expect(s.ctx().mms.mm0.lockedVm).toBe(0);
  });

  it('live_update_without_the_mdev: detach, invalidate, exec, attach refused, re-supply, attach', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    s.step({ type: 'VmmDetachGroup' }, 'vmm', 'EBUSY'); // the device is open: container_users != 1
    closeDevice(s);
    s.step({ type: 'VmmDetachGroup' }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 'all' }, 'vmm', '0');
    s.step({ type: 'VmmAttachGroup' }, 'vmm', 'EBUSY'); // "Attach could require pinning"
    s.step({ type: 'VmmExec' }, 'vmm', '0');
    expect(s.ctx().mms.mm1.lockedVm).toBe(0);
    s.step({ type: 'VmmMapVaddr', dma: 0 }, 'vmm', '0'); // vfio_change_dma_owner: charge mm1
    expect(s.ctx().mms.mm1.lockedVm).toBe(1);
    s.step({ type: 'VmmAttachGroup' }, 'vmm', 'EBUSY'); // dma 1 is still invalid
    s.step({ type: 'VmmMapVaddr', dma: 1 }, 'vmm', '0');
    s.step({ type: 'VmmAttachGroup' }, 'vmm', '0');
    s.step({ type: 'VmmOpenDevice' }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 1 }, 'mdev', '0');
    expect(s.ctx().t1.dmas[1].pin).toEqual({ from: 'mm1', vaddrMm: 'mm1', refs: ['mdev'] });
    expect(s.ctx().mms.mm1.lockedVm).toBe(2);
  });

  it('vaddr_unmap_all_over_an_invalid_dma_rolls_back', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    closeDevice(s);
    s.step({ type: 'VmmDetachGroup' }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 1 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 'all' }, 'vmm', 'EINVAL'); // dma 1 already invalid
    expect(s.ctx().t1.dmas[0].vaddrMm).toBe('mm0'); // dma 0 rolled back
    s.step({ type: 'VmmMapVaddr', dma: 0 }, 'vmm', 'EINVAL'); // not invalid
    s.step({ type: 'VmmUnmapDma', range: 1 }, 'vmm', '0'); // a normal unmap of an invalid dma is allowed
    s.step({ type: 'VmmMapVaddr', dma: 1 }, 'vmm', 'ENOENT');
  });

  it('pin_after_exec_without_vaddr_update_is_enodev', () => {
    const s = s0();
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmExec' }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'ENODEV'); // dma->mm is the dead mm0
    s.step({ type: 'VmmMapVaddr', dma: 0 }, 'vmm', 'EINVAL'); // never invalidated
  });

  it('second_set_container_fails', () => {
    const s = s0();
    s.step({ type: 'VmmAttachGroup' }, 'vmm', 'EINVAL'); // already in the container
  });
});

describe('scenarios, v6.1 (vfio_wait)', () => {
  it('pin_waits_only_for_its_own_vaddr', () => {
    const s = scenario(machineFor({ kernel: '6.1' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmMapDma', dma: 1 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', '0'); // allowed with an mdev in v6.1
    s.step({ type: 'MdevPinPages', dma: 1 }, 'mdev', '0'); // dma 1's vaddr is valid
    s.step({ type: 'MdevUnpinPages', dma: 1 }, 'mdev', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'blocked'); // sleeps in vfio_wait
    s.disabled({ type: 'MdevPinWake' });
    s.step({ type: 'VmmMapVaddr', dma: 0 }, 'vmm', '0'); // wake_up_all
    s.step({ type: 'MdevPinWake' }, 'mdev', '0');
    expect(s.value().mdev).toBe('idle');
  });

  it('container_close_fails_a_sleeping_pin_with_efault', () => {
    const s = scenario(machineFor({ kernel: '6.1' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'blocked');
    s.step({ type: 'VmmCloseContainer' }, 'vmm', '0'); // VFIO_IOMMU_CONTAINER_CLOSE
    s.step({ type: 'MdevPinWake' }, 'mdev', 'EFAULT');
  });

  it('exec_then_unmap_underflows_locked_vm', () => {
    const s = scenario(machineFor({ kernel: '6.1' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmExec' }, 'vmm', '0');
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', '0');
    expect(s.ctx().mms.mm1.lockedVm).toBe(-1); // WARN_ON_ONCE(pages > locked_vm), then wraps
  });

  it('close_flag_as_proposed_wakes_a_sleeping_pin', () => {
    const s = scenario(machineFor({ kernel: '6.1', closeFlag: 'per-waiter' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'blocked');
    s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
    s.disabled({ type: 'ReleaseCloseDevice' }); // still at the notification
    s.step({ type: 'ReleaseNotifyClose' });
    s.disabled({ type: 'ReleaseCloseDevice' }); // close_device waits for the in-flight pin
    s.step({ type: 'MdevPinWake' }, 'mdev', 'EFAULT');
    s.step({ type: 'ReleaseCloseDevice' });
  });

  it('close_flag_as_proposed_misses_the_pin_that_retries_after_efault', () => {
    const s = scenario(machineFor({ kernel: '6.1', closeFlag: 'per-waiter' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'blocked');
    s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
    s.step({ type: 'ReleaseNotifyClose' });
    s.step({ type: 'MdevPinWake' }, 'mdev', 'EFAULT');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'blocked'); // close_device has not run: the driver may pin
    expect(s.ctx().wait.waiters).toEqual([{ actor: 'mdev', device: 'mdev', woken: false, closeFlag: false }]);
    for (const type of [
      'ReleaseCloseDevice',
      'MdevPinWake',
      'VmmCloseDeviceReturn',
      'VmmMapVaddr',
    ] as const) {
      s.disabled({ type, dma: 0 });
    }
  });

  it('sticky_close_flag_fails_the_retry_at_once', () => {
    const s = scenario(machineFor({ kernel: '6.1', closeFlag: 'sticky' }));
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'VmmUnmapVaddr', range: 0 }, 'vmm', '0');
    s.step({ type: 'VmmCloseDevice' }, 'vmm', 'blocked');
    s.step({ type: 'ReleaseNotifyClose' });
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', 'EFAULT'); // the device is marked closing
    s.step({ type: 'ReleaseCloseDevice' });
  });
});

describe('sizes: the parameters dmas and mdevs', () => {
  it('two pinning mdevs (mdevs=2, dmas=1): current holds completely, and both hold one page', async () => {
    const v = model.variant('current', { dmas: 1, mdevs: 2 });
    const r = await explore(v);
    const status = (name: string) => r.properties.find((p) => p.name === name)?.status;
    expect(r.complete).toBe(true);
    expect(r.states).toBe(45_630);
    expect(violated(r)).toEqual([]);
    expect(status('everyMdev2CloseCompletes')).toBe('holds');
    expect(status('pageSharedByTwoMdevs')).toBe('holds');
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('one dma: the relock never notifies again in 7.3, and says why', async () => {
    const r = await explore(model.variant('current', { dmas: 1 }));
    expect(r.complete).toBe(true);
    expect(r.coverage.unreachable['vmm.unmapRelock#VmmUnmapRelock[1]']).toMatch(/with one dma/);
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('an out-of-range size or an unknown parameter is one clear error', () => {
    expect(() => model.variant('current', { dmas: 9 })).toThrow(
      "model 'container': dmas must be an integer from 1 to 8, got 9",
    );
    expect(() => model.variant('current', { mdevs: 3 })).toThrow(
      "model 'container': mdevs must be an integer from 1 to 2, got 3",
    );
    expect(() => model.variant('current', { vmms: 2 })).toThrow(
      "model 'container' has no parameter 'vmms' (parameters: dmas, mdevs)",
    );
  });

  it('the second mdev shares a pinned page: one vfio_pfn, freed by the last unpin of the walk', () => {
    const s = scenario(machineFor({ mdevs: 2 }));
    const two = { dev: 1 };
    s.step({ type: 'VmmMapDma', dma: 0 }, 'vmm', '0');
    s.step({ type: 'MdevPinPages', dma: 0 }, 'mdev', '0');
    s.step({ type: 'MdevPinPages', dma: 0, ...two }, 'mdev2', '0'); // vfio_iova_get_vfio_pfn: ref_count 2
    expect(s.ctx().t1.dmas[0].pin?.refs).toEqual(['mdev', 'mdev2']);
    s.step({ type: 'VmmUnmapDma', range: 0 }, 'vmm', 'blocked');
    s.step({ type: 'VmmUnmapListLock' });
    s.step({ type: 'VmmUnmapCallback' }); // mdev's callback: one reference left
    expect(s.ctx().t1.dmas[0].pin?.refs).toEqual(['mdev2']);
    s.disabled({ type: 'VmmUnmapListUnlock' }); // every registered device's callback runs first
    s.step({ type: 'VmmUnmapCallback' }); // mdev2's: the last one, the page goes
    expect(s.ctx().t1.dmas[0].pin).toBeNull();
    s.step({ type: 'VmmUnmapListUnlock' });
    s.step({ type: 'VmmUnmapRelock' }, 'vmm', '0');
    expect(s.ctx().mms.mm0.lockedVm).toBe(0);
  });

  it("each mdev's close is its own: the second's release path runs while the first stays open", () => {
    const s = scenario(machineFor({ mdevs: 2 }));
    const two = { dev: 1 };
    s.step({ type: 'VmmCloseDevice', ...two }, 'vmm', 'blocked');
    expect(s.value().vmm).toBe('closingDevice2');
    s.disabled({ type: 'ReleaseCloseDevice' }); // the first mdev is not closing
    s.step({ type: 'ReleaseCloseDevice', ...two });
    s.step({ type: 'ReleaseUnregisterLock', ...two });
    s.step({ type: 'ReleaseUnregisterListLock', ...two });
    expect(s.ctx().t1.devices).toEqual(['mdev']);
    s.step({ type: 'ReleaseFinish', ...two });
    s.step({ type: 'VmmCloseDeviceReturn', ...two }, 'vmm', '0');
    s.step({ type: 'VmmDetachGroup', ...two }, 'vmm', '0');
    s.step({ type: 'VmmDetachGroup' }, 'vmm', 'EBUSY'); // the first mdev's device is still open
    expect(s.ctx().t1.emulated).toEqual(['mdev']);
  });

  it('the second mdev reads as itself in the reports', () => {
    const v = model.variant('current', { mdevs: 2 });
    const s = { context: v.machine.config.context, value: {} } as unknown as ModelSnapshot<Ctx>;
    const label = (e: Ev) => containerLabel(e, s);
    expect(label({ type: 'MdevPinPages', dma: 1, dev: 1 })).toBe('mdev2: vfio_pin_pages(dma1)');
    expect(label({ type: 'VmmCloseDevice', dev: 1 })).toBe('close(mdev2 device fd)');
    expect(label({ type: 'VmmOpenDevice', dev: 1 })).toBe('ioctl(mdev2 group, VFIO_GROUP_GET_DEVICE_FD)');
    expect(label({ type: 'ReleaseUnregisterLock', dev: 1 })).toBe(
      'release2: unregister_device: mutex_lock(iommu->lock)',
    );
  });
});
