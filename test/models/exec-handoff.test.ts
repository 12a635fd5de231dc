/**
 * The exec-handoff model (machines/exec-handoff.ts, spec/exec-handoff.md):
 * each design's verdict at its default bounds, each invariant shown firing
 * with its shortest counterexample, the `recoverable` property (AG EF
 * oneLiveOwner) checked by backward reachability over the whole graph, and
 * one scenario per design in the selftest style (the predicted errno at each
 * step).
 */
import { describe, expect, it } from 'vitest';
import { type AnyMachineSnapshot, type EventObject, getInitialSnapshot, transition } from 'xstate';
import { type CompiledState, createCompiledEngine } from '../../explorer/engine-compiled.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, {
  createHandoffMachine,
  DESIGNS,
  type HandoffCtx,
  type HandoffDesign,
  type HandoffEv,
} from '../../machines/exec-handoff.ts';
import { WARN } from '../../machines/kernel/iommufd-pages.ts';
import { exploreOnce, traceOf as traceOfSteps, violated } from './support.ts';

const label = (e: HandoffEv) => {
  const arg = e.dma ?? e.rlimit ?? e.complete ?? (e.junk !== undefined ? `junk=${e.junk}` : undefined);
  return `${e.type}${arg !== undefined ? `(${arg})` : ''}`;
};

const traceOf = (r: ExploreResult, property: string) =>
  traceOfSteps(r, property, (s) => `${label(s.event as HandoffEv)}${s.result ? `=${s.result}` : ''}`);

const run = exploreOnce(model);

/**
 * An independent check of `recoverable` (AG EF p), to cross-check the
 * explorer's temporal checker on these models: explore the whole graph with
 * the compiled engine, mark every state from which a p-state is reachable,
 * and return the shortest path (BFS order) to a state outside that set.
 */
function recoverability(v: ResolvedVariant<HandoffCtx, HandoffEv>) {
  const prop = v.properties.recoverable;
  if (prop?.kind !== 'recoverable') throw new Error(`${v.name}: no recoverable property`);
  const engine = createCompiledEngine(v.machine);
  const index = new Map<string, number>();
  const states: CompiledState[] = [engine.initial()];
  const parent: { from: number; event: EventObject | null }[] = [{ from: -1, event: null }];
  const preds: number[][] = [[]];
  index.set(engine.encode(states[0]), 0);
  for (let i = 0; i < states.length; i++) {
    for (const ev of v.events(engine.view(states[i]) as never)) {
      const next = engine.step(states[i], ev);
      if (next === null) continue;
      const key = engine.encode(next);
      let j = index.get(key);
      if (j === undefined) {
        j = states.length;
        index.set(key, j);
        states.push(next);
        parent.push({ from: i, event: ev });
        preds.push([]);
      }
      preds[j].push(i);
    }
  }
  const good = new Set<number>();
  const stack: number[] = [];
  states.forEach((s, i) => {
    if (prop.p(engine.view(s) as never)) {
      good.add(i);
      stack.push(i);
    }
  });
  while (stack.length > 0) {
    for (const i of preds[stack.pop()!]) {
      if (!good.has(i)) {
        good.add(i);
        stack.push(i);
      }
    }
  }
  const bad = states.findIndex((_, i) => !good.has(i));
  const path: string[] = [];
  for (let i = bad; i > 0; i = parent[i].from) path.unshift(label(parent[i].event as HandoffEv));
  return { states: states.length, unrecoverable: states.length - good.size, path: bad < 0 ? null : path };
}

describe('exec-handoff verdicts at the default bounds', () => {
  it.each(model.variantNames)('%s: finds exactly what it expects, completely', async (name) => {
    const variant = model.variant(name);
    const r = await run(name);
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual([...(variant.expect?.violated ?? [])].sort());
    expect(r.states).toBe(variant.expect?.states);
    const rec = recoverability(variant);
    expect(rec.states).toBe(r.states);
    expect(rec.unrecoverable > 0).toBe(violated(r).includes('recoverable'));
  });
});

describe('each invariant fires, shortest counterexample first', () => {
  it('alwaysPageProvider: vaddr, exec right after the invalidation leaves the pins on a dead mm (2 steps)', async () => {
    expect(traceOf(await run('vaddr'), 'alwaysPageProvider')).toEqual([
      'VmmInvalidateVaddr=0',
      'VmmExec(ok)=0',
    ]);
  });

  it('pinnableHasProvider is not violated by vaddr: type1 refuses every pin while a vaddr is invalid', async () => {
    expect(violated(await run('vaddr'))).not.toContain('pinnableHasProvider');
  });

  it('atomicOwnerChange: vaddr, the first MAP_DMA(VADDR) splits the owners between mm1 and the dead mm0 (4 steps)', async () => {
    expect(traceOf(await run('vaddr'), 'atomicOwnerChange')).toEqual([
      'VmmInvalidateVaddr=0',
      'VmmExec(ok)=0',
      'ImageMmap=0',
      'ImageMapVaddr(0)=0',
    ]);
  });

  it('changeReachesCaller and pinnableHasProvider: the draft returns 0 and moves nothing (USER, same uid)', async () => {
    const r = await run('iommufd-draft');
    expect(traceOf(r, 'changeReachesCaller')).toEqual(['VmmFork=0', 'HolderIoasChangeProcess(junk=0)=0']);
    expect(traceOf(r, 'pinnableHasProvider')).toEqual([
      'VmmFork=0',
      'HolderIoasChangeProcess(junk=0)=0',
      'VmmExec(ok)=0',
    ]);
  });

  it('accountingConserved: the draft charges what its uninitialised all_npinned[] held (2 steps)', async () => {
    for (const name of ['iommufd-draft', 'iommufd-draft-mm']) {
      expect(traceOf(await run(name), 'accountingConserved')).toEqual([
        'VmmFork=0',
        'HolderIoasChangeProcess(junk=1)=0',
      ]);
    }
  });

  it('failedChangeIsNoop, lastNpinnedSynced, noChangeProcessUnchargeWarn: 7.3 MM mode without a holder (U1, 3 steps)', async () => {
    const r = await run('iommufd-change-process-noholder-mm');
    for (const p of ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn']) {
      expect(traceOf(r, p)).toEqual(['VmmExec(ok)=0', 'ImageMmap=0', 'ImageIoasChangeProcess=EINVAL']);
    }
  });

  it('recoverable: staged, a staged vaddr that cannot be cancelled once the image cannot take over (5 steps)', async () => {
    const path = ['VmmFork', 'HolderChangeDmaOwner', 'VmmExec(low)', 'ImageMmap', 'ImageStageVaddr(0)'];
    expect(recoverability(model.variant('change-dma-owner-staged')).path).toEqual(path);
    const r = await run('change-dma-owner-staged');
    expect(r.violations.find((v) => v.property === 'recoverable')?.kind).toBe('unrecoverable');
    expect(traceOf(r, 'recoverable').map((s) => s.replace(/=.*$/, ''))).toEqual(path);
  });

  it('recoverable: vaddr, invalidate and exec into an image whose RLIMIT_MEMLOCK is too low (2 steps)', async () => {
    expect(recoverability(model.variant('vaddr')).path).toEqual(['VmmInvalidateVaddr', 'VmmExec(low)']);
    expect(traceOf(await run('vaddr'), 'recoverable')).toEqual(['VmmInvalidateVaddr=0', 'VmmExec(low)=0']);
  });

  it('recoverable: the draft leaves the pages with the VMM, whose mm exec kills (3 steps)', async () => {
    const path = ['VmmFork', 'HolderIoasChangeProcess(junk=0)', 'VmmExec(ok)'];
    expect(recoverability(model.variant('iommufd-draft')).path).toEqual(path);
    // The explorer may pick the other junk value for the holder's call: any 3-step path of this shape.
    const t = traceOf(await run('iommufd-draft'), 'recoverable');
    expect(t).toHaveLength(3);
    expect(t[0]).toBe('VmmFork=0');
    expect(t[1]).toMatch(/^HolderIoasChangeProcess\(junk=[01]\)=0$/);
    expect(t[2]).toBe('VmmExec(ok)=0');
  });

  it('recoverable holds where a live holder keeps the mappings: fork-change-mm, array, 7.3 CHANGE_PROCESS', () => {
    for (const name of [
      'fork-change-mm',
      'change-dma-owner-array',
      'iommufd-change-process',
      'iommufd-draft-mm',
    ]) {
      expect(recoverability(model.variant(name)).unrecoverable).toBe(0);
    }
  });
});

// ---------------------------------------------------------------- scenarios

function fixture(d: HandoffDesign) {
  const machine = createHandoffMachine(d);
  let s: AnyMachineSnapshot = getInitialSnapshot(machine) as AnyMachineSnapshot;
  const ctx = () => s.context as HandoffCtx;
  /** Send one call; returns its predicted result (the actor's ret). */
  const call = (type: string, params: Partial<HandoffEv> = {}) => {
    const ev = { type, ...params };
    if (!s.can(ev)) throw new Error(`${type} ${JSON.stringify(params)} is not enabled`);
    [s] = transition(machine, s, ev) as [AnyMachineSnapshot, unknown];
    const actor = type.startsWith('Holder') ? 'holder' : type.startsWith('Image') ? 'image' : 'vmm';
    return ctx().ret[actor];
  };
  const can = (type: string, params: Partial<HandoffEv> = {}) => s.can({ type, ...params });
  const owners = () => [
    ...ctx().k.areas.map((a) => ctx().k.pages[a.pages]!.mm),
    ...ctx().dmas.map((x) => x.mm),
  ];
  return { call, can, ctx, owners, done: () => s.status === 'done' };
}

describe('one handoff a scenario', () => {
  it('fork-change-mm: holder takes, exec, image takes back, holder exits; locked_vm follows', () => {
    const f = fixture(DESIGNS['fork-change-mm']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.can('VmmExec', { rlimit: 'ok' })).toBe(false); // waits for the holder's signal
    expect(f.call('HolderChangeMm')).toBe('0');
    expect(f.ctx().k.mms.mmH.lockedVm).toBe(2);
    expect(f.ctx().k.mms.mm0.lockedVm).toBe(0);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageChangeMm')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.call('HolderExit')).toBe('0');
    expect(f.done()).toBe(true);
  });

  it('vaddr: per-dma re-supply; ENOMEM leaves the second dma invalid on the dead mm, for good', () => {
    const f = fixture(DESIGNS.vaddr);
    expect(f.call('VmmInvalidateVaddr')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageMapVaddr', { dma: 0 })).toBe('0');
    expect(f.call('ImageMapVaddr', { dma: 1 })).toBe('ENOMEM');
    expect(f.owners()).toEqual(['mm1', 'mm0']);
    expect(f.ctx().dmas[1].vaddr).toBeNull();
    expect(f.call('ImageMapVaddr', { dma: 0 })).toBe('EINVAL'); // already valid
    expect(f.ctx().k.mms.mm0).toMatchObject({ alive: false, lockedVm: 2 }); // never uncharged: it is dead
  });

  it('change-dma-owner-staged: EINVAL for a missing vaddr is recoverable; ENOMEM after staging is not', () => {
    const f = fixture(DESIGNS['change-dma-owner-staged']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0'); // fork kept the vaddrs: nothing to stage
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('ENXIO'); // the old vaddrs are not the image's
    expect(f.call('ImageStageVaddr', { dma: 0 })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('EINVAL'); // some but not all staged
    expect(f.call('ImageStageVaddr', { dma: 1 })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('ENOMEM');
    expect(f.call('ImageStageVaddr', { dma: 0 })).toBe('EINVAL'); // no way to cancel or redo a staged vaddr
    expect(f.call('HolderChangeDmaOwner')).toBe('ENXIO'); // the revert sees the image's vaddrs
    expect(f.owners()).toEqual(['mmH', 'mmH']);
    expect(f.ctx().dmas.every((x) => x.staged === 'L1')).toBe(true);
  });

  it('change-dma-owner-array: an incomplete array is EINVAL and changes nothing; ENOMEM leaves the holder in charge', () => {
    const f = fixture(DESIGNS['change-dma-owner-array']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwnerArray', { complete: true })).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageChangeDmaOwnerArray', { complete: false })).toBe('EINVAL');
    expect(f.call('ImageChangeDmaOwnerArray', { complete: true })).toBe('ENOMEM');
    expect(f.call('HolderChangeDmaOwnerArray', { complete: true })).toBe('0'); // the revert is a no-op
    expect(f.owners()).toEqual(['mmH', 'mmH']);
  });

  it('iommufd-change-process: 7.3, USER mode; the holder needs 2×N under RLIMIT_MEMLOCK (U3), which "ok" gives', () => {
    const f = fixture(DESIGNS['iommufd-change-process']);
    expect(f.ctx().k.users.u).toBe(2);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess')).toBe('0');
    expect(f.ctx().k.users.u).toBe(2);
    expect(f.ctx().k.mms.mmH.pinnedVm).toBe(2);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.call('HolderExit')).toBe('0');
    expect(f.done()).toBe(true);
  });

  it('iommufd-change-process-noholder-mm: U1 in the handoff, EINVAL although the image already owns everything', () => {
    const f = fixture(DESIGNS['iommufd-change-process-noholder-mm']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('EINVAL');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.warn).toEqual([WARN.changeProcessUncharge]);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([0, 0]);
    expect(f.call('ImageIoasChangeProcess')).toBe('0'); // a retry finds nothing to move
  });

  it('F1 fixed (conformance/kernel/patches/0001): the image takes the charge and CHANGE_PROCESS returns 0', () => {
    const f = fixture(DESIGNS['iommufd-change-process-noholder-mm-fixed']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.warn).toEqual([]);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([1, 1]);
    expect(f.ctx().k.mms.mm1).toMatchObject({ lockedVm: 2, pinnedVm: 2 });
  });

  it('F1 fixed: the design violates only what the USER no-holder design does (recoverable)', async () => {
    expect(violated(await run('iommufd-change-process-noholder-mm-fixed'))).toEqual(
      violated(await run('iommufd-change-process-noholder')),
    );
  });

  it('the draft with MM mode and a dead old mm ignores the failed uncharge and returns 0', () => {
    const f = fixture({ ...DESIGNS['iommufd-draft-mm'], holder: false });
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageIoasChangeProcess', { junk: 0 })).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([1, 1]);
    expect(f.ctx().k.warn).toEqual([]);
  });

  it('iommufd-draft: USER mode, same uid, CHANGE_PROCESS returns 0 and the owner stays the VMM', () => {
    const f = fixture(DESIGNS['iommufd-draft']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess', { junk: 0 })).toBe('0');
    expect(f.owners()).toEqual(['mm0', 'mm0']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.ctx().k.mms.mm0.alive).toBe(false);
  });
});
