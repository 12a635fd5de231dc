/**
 * Properties of the exec-handoff designs (spec/exec-handoff.md). The state
 * invariants are the IOAS ones (invariants/ioas.ts) that make sense for both
 * the type1 and the iommufd designs; `oneLiveOwner` is the goal state of the
 * `recoverable` property (AG EF oneLiveOwner).
 */
import type { StatePredicate } from '../explorer/model.ts';
import { mappings, type OwnedState, type OwnerLog } from '../machines/kernel/iommufd-owners.ts';
import {
  accountingConserved,
  accountingNonNegative,
  alwaysPageProvider,
  atomicOwnerChange,
  changeReachesCaller,
  failedChangeIsNoop,
  lastNpinnedSynced,
  noChangeProcessUnchargeWarn,
  noLockedVmUnderflowWarn,
  pinnableHasProvider,
} from './ioas.ts';

type Ctx = OwnedState & { readonly log: OwnerLog | null };

/**
 * One live process owns every mapping and no vaddr change is half done
 * (no invalid or staged vaddr): the state a VMM must always be able to get
 * back to. seeds/001: "If the change can fail then we can get stuck in a
 * situation where we cannot revert and the fork cannot be exited".
 */
export const oneLiveOwner: StatePredicate<Ctx> = (s) => {
  const ms = mappings(s.context);
  const owners = new Set(ms.map((m) => m.owner));
  if (owners.size !== 1) return false;
  const [owner] = owners;
  return s.context.k.mms[owner]?.alive === true && ms.every((m) => !m.pending);
};

export const handoffInvariants: Readonly<Record<string, StatePredicate<Ctx>>> = {
  alwaysPageProvider,
  pinnableHasProvider,
  atomicOwnerChange,
  failedChangeIsNoop,
  changeReachesCaller,
  accountingConserved,
  accountingNonNegative,
  lastNpinnedSynced,
  noChangeProcessUnchargeWarn,
  noLockedVmUnderflowWarn,
};
