/**
 * Partial-order reduction on the registered variants larger than
 * CHECKED_STATES (up to 160,000 states): the same invariant and deadlock
 * verdicts with and without --por, every violation confirmed. The declared
 * footprints are checked on the sample here (every step is checked on the
 * smaller variants in por.test.ts, and was checked on these when they were
 * declared). About 13 minutes on a loaded 2-core machine, so it runs with the
 * slow tests: npx vitest run --config vitest.distributed.config.ts test/explorer/por-large.slow.ts
 */
import { describe, it } from 'vitest';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import { CHECKED_STATES, sameSafetyVerdicts } from './por-helpers.ts';

const large = (await registeredModels()).flatMap((m) =>
  m.variantNames
    .map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant])
    .filter(([, v]) => v.footprints !== undefined && (v.expect?.states ?? Infinity) > CHECKED_STATES),
);

describe('partial-order reduction on the large registered variants', () => {
  it.each(large)(
    '%s: the same invariant and deadlock verdicts',
    (_n, v) => sameSafetyVerdicts(v, false),
    900_000,
  );
});
