// Helpers for the kernel tests: one uAPI step with its errno asserted, as the iommufd
// selftests do (tools/testing/selftests/iommu/iommufd_utils.h test_err_* macros).
import { expect } from 'vitest';
import type { Actor, Args, CallResult } from '../target.ts';

export const PAGE_SIZE = 4096;

/** Runs op, asserting it finished with `errno` ('0' for success) and printed no splat. */
export async function step(actor: Actor, op: string, args: Args, errno: string): Promise<CallResult> {
  const r = await actor.call(op, args);
  const what = `${actor.name}: ${op} ${JSON.stringify(args, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`;
  expect(r.status, `${what} status`).toBe('done');
  expect(r.errno, `${what} errno`).toBe(errno);
  expect(r.splat, `${what} printed a splat`).toBeUndefined();
  return r;
}

/** VmPin and VmLck of an actor (fs/proc/task_mmu.c:task_mem), in kB. */
export async function vm(reader: Actor, of: string): Promise<{ pin: number; lck: number }> {
  const r = await step(reader, 'proc_status', { actor: of }, '0');
  return { pin: Number(r.out.vm_pin_kb), lck: Number(r.out.vm_lck_kb) };
}
