/**
 * Views (`--view`, explorer/view.ts, TLC's VIEW): what of a model's state
 * can no longer matter, history the models keep for their reports and
 * invariants and no guard or assign reads, declared as fields a projection
 * forgets (explorer/model.ts Projection). Each rule here is one such piece,
 * and a model lists those that hold for its properties; the explorer proves
 * the list on every step it evaluates (nothing reads a forgotten field; a
 * forgotten field is overwritten or forgotten again) and stops with a model
 * error naming the field and what reads it otherwise.
 */
import type { Forget } from '../../explorer/model.ts';
import type { Mms } from './mm.ts';

/**
 * Each actor's last result, which the reports read on traces replayed from
 * the real initial state and nothing in the machines does (every model here).
 * Forgotten everywhere: a step that sets one actor's result copies the others
 * (`{ ...c.ret, vmm: '0' }`), which is not a read.
 */
export const forgetResults: Forget = { fields: ['ret.*'], value: null };

/**
 * A dead mm's counters: mmget_not_zero() fails on it from then on, so
 * __account_locked_vm (mm.ts accountLockedVm) neither reads nor changes
 * them, and accountingConserved judges live mms only. Whether the mm is
 * alive is never forgotten, so a state and its view forget the same counters.
 */
export const forgetDeadCounters: Forget<{ readonly mms: Mms }> = {
  fields: ['mms.*.lockedVm', 'mms.*.pinnedVm'],
  value: 0,
  when: (s, [mm]) => !s.context.mms[mm].alive,
};
