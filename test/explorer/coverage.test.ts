/**
 * Coverage and vacuity: a transition that never fires is reported by name,
 * an event the generator offers but no state accepts is listed, a model's
 * `unreachable` list must be true, a leadsTo whose premise is never reached
 * is vacuous, and sometimes(p) is a reachability check.
 */
import { describe, expect, it } from 'vitest';
import { coverageOf, matches } from '../../explorer/coverage.ts';
import { explore } from '../../explorer/explore.ts';
import { leadsTo, sometimes } from '../../explorer/model.ts';
import { formatReport } from '../../explorer/report-text.ts';
import { regionCache } from '../fixtures/buggy.ts';

describe('a guard typo that makes an event impossible', () => {
  it('is reported as a transition that never fired and an event never enabled', async () => {
    const r = await explore(regionCache('guard-typo').variant());
    // Every invariant "holds" here: the model never does anything.
    expect(r.violations).toEqual([]);
    expect(r.coverage.neverFired).toEqual(['vmm#Remap[0]']);
    expect(r.coverage.neverEnabled).toEqual(['Remap']);
    const text = formatReport(r, ['vmm', 'mdev']);
    expect(text).toContain('coverage: 1 of 2 transitions never fired');
    expect(text).toMatch(/ {4}vmm#Remap\[0\]\n/);
    expect(text).toMatch(/offered but never enabled:\n {4}Remap/);
  });

  it('the correct model covers everything', async () => {
    const r = await explore(regionCache('none').variant());
    expect(r.coverage).toMatchObject({ transitions: 2, neverFired: [], neverEnabled: [] });
  });
});

describe('knowingly unreachable transitions', () => {
  const v = regionCache('guard-typo').variant();
  const fired = (bits: number[]) => ({
    transitionIds: ['region-cache.vmm#Remap[0]', 'region-cache.mdev#Use[0]'],
    fired: Uint8Array.from(bits),
  });

  it('a listed transition with its reason is explained, not stale', () => {
    const c = coverageOf({ ...v, unreachable: { 'vmm#Remap': 'the typo' } }, fired([0, 1]), new Map());
    expect(c.unreachable).toEqual({ 'vmm#Remap[0]': 'the typo' });
    expect(c.staleUnreachable).toEqual([]);
  });

  it('a listed transition that fired, or a name that matches nothing, is stale', () => {
    const c = coverageOf(
      { ...v, unreachable: { 'mdev#Use[0]': 'wrong', 'vmm#Nope': 'no such' } },
      fired([0, 1]),
      new Map(),
    );
    expect(c.staleUnreachable).toEqual(['mdev#Use[0] (fired)', 'vmm#Nope (no such transition)']);
  });

  it('keys: one branch, every branch, or a * pattern', () => {
    expect(matches('vmm.idle#VmmMapDma[0]', 'vmm.idle#VmmMapDma[0]')).toBe(true);
    expect(matches('vmm.idle#VmmMapDma[0]', 'vmm.idle#VmmMapDma[1]')).toBe(false);
    expect(matches('vmm.idle#VmmMapDma', 'vmm.idle#VmmMapDma[1]')).toBe(true);
    expect(matches('vmm.idle#VmmMap', 'vmm.idle#VmmMapDma[1]')).toBe(false);
    expect(matches('*#VmmHalt', 'vmm.unmapRelock#VmmHalt[0]')).toBe(true);
    expect(matches('*#VmmHalt', 'vmm.unmapRelock#VmmHaltNow[0]')).toBe(false);
    expect(matches('vmm.*#Vmm*[1]', 'vmm.a.b#VmmX[1]')).toBe(true);
  });
});

describe('vacuity and reachability', () => {
  const base = regionCache('none').variant();

  it('a leadsTo whose premise is never reached holds vacuously, and says so', async () => {
    const r = await explore({
      ...base,
      properties: {
        never: leadsTo(
          (s: any) => s.context.gen > 99,
          (s: any) => s.context.gen === 0,
        ),
      },
    });
    expect(r.properties.find((p) => p.name === 'never')).toMatchObject({
      status: 'holds',
      vacuous: true,
      note: 'vacuous: its premise p is never reached',
    });
  });

  it('sometimes(p): holds with the depth of its shortest witness, or is violated when never reached', async () => {
    const r = await explore({
      ...base,
      properties: {
        stale: sometimes((s: any) => s.context.stale),
        genTen: sometimes((s: any) => s.context.gen === 10),
      },
    });
    const byName = Object.fromEntries(r.properties.map((p) => [p.name, p]));
    expect(byName.stale).toMatchObject({
      status: 'holds',
      note: expect.stringMatching(/^reached after \d+ steps$/),
    });
    expect(byName.genTen).toMatchObject({ kind: 'sometimes', status: 'violated' });
    expect(r.violations.find((v) => v.property === 'genTen')).toMatchObject({
      kind: 'unreachable',
      trace: [],
    });
  });

  it('sometimes(p) on a cut-off search that did not reach p is unknown, not violated', async () => {
    const r = await explore(
      { ...base, properties: { genThree: sometimes((s: any) => s.context.gen === 3) } },
      { depth: 1 },
    );
    expect(r.properties.find((p) => p.name === 'genThree')?.status).toBe('unknown');
  });
});
