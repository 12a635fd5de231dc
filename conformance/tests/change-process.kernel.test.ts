// The change_process fixture of tools/testing/selftests/iommu/iommufd.c (UAPI-FACTS §3.3),
// driven step by step through the shim, with the fork and the VmPin/VmLck checks, and the
// child's assertions checked here (the selftest's parent never looks at the child's status).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget, outNum, type Target } from '../target.ts';
import { PAGE_SIZE, step, vm } from './steps.ts';

const BUFFER_SIZE = PAGE_SIZE * 16;
const NLOCK_KB = PAGE_SIZE / 1024;

let target: Target;

beforeAll(async () => {
  target = await openTarget({ kind: 'qemu' });
});

afterAll(async () => {
  await target?.close();
});

type Accounting = 'none' | 'user' | 'mm';

/**
 * FIXTURE_SETUP(change_process) + TEST_F(change_process, basic) + teardown_iommufd().
 * 'none' leaves the ctx default, which still charges USER because CAP_IPC_LOCK is dropped
 * (PAGES:iopt_alloc_pages); 'mm' sets IOMMU_OPTION_RLIMIT_MODE=1 so pages charge mm->locked_vm.
 */
async function changeProcess(accounting: Accounting) {
  const parent = target.actor(`parent-${accounting}`);
  const fd = outNum(await step(parent, 'open', { path: '/dev/iommu' }, '0'), 'fd');
  // drop_cap_ipc_lock(): with CAP_IPC_LOCK the pages would be IOPT_PAGES_ACCOUNT_NONE
  await step(parent, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
  if (accounting !== 'none') {
    await step(
      parent,
      'option',
      { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: accounting === 'mm' ? 1 : 0 },
      '0',
    );
  }
  const ioas = outNum(await step(parent, 'ioas_alloc', { fd }, '0'), 'ioas_id');
  await step(parent, 'mock_domain', { fd, ioas }, '0');
  const buffer = outNum(
    await step(parent, 'mmap', { length: BUFFER_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
    'addr',
  );
  const mfd = outNum(await step(parent, 'memfd_create', { name: 'buffer', size: BUFFER_SIZE }, '0'), 'fd');

  // A user-VA map is not IOPT_ADDRESS_FILE: IOAS:iommufd_ioas_change_process refuses with EINVAL
  const iova = outNum(
    await step(parent, 'ioas_map', { fd, ioas, vaddr: buffer, length: PAGE_SIZE }, '0'),
    'iova',
  );
  await step(parent, 'ioas_change_process', { fd }, 'EINVAL');
  await step(parent, 'ioas_unmap', { fd, ioas, iova, length: PAGE_SIZE }, '0');

  // MAP_FILE pages may move; in the same process nothing needs a charge update
  await step(parent, 'ioas_map_file', { fd, ioas, mfd, start: 0, length: PAGE_SIZE }, '0');
  await step(parent, 'ioas_change_process', { fd }, '0');

  const childName = `child-${accounting}`;
  await step(parent, 'fork', { child: childName }, '0');
  const child = target.actor(childName);

  // The mock domain pinned the page when it was mapped: the parent is charged
  const before = await vm(child, parent.name);
  expect(before.pin).toBe(NLOCK_KB);
  expect(before.lck).toBe(accounting === 'mm' ? NLOCK_KB : 0);
  expect(await vm(child, childName)).toEqual({ pin: 0, lck: 0 });

  // The child takes the charge over (charge new mm first, then uncharge the old one)
  await step(child, 'ioas_change_process', { fd }, '0');
  expect(await vm(child, parent.name)).toEqual({ pin: 0, lck: 0 });
  expect(await vm(child, childName)).toEqual({ pin: NLOCK_KB, lck: accounting === 'mm' ? NLOCK_KB : 0 });
  await step(child, 'exit', { code: 0 }, '0');

  // teardown_iommufd(): closing the ctx destroys everything; no page stays pinned
  await step(parent, 'close', { fd }, '0');
  const fd2 = outNum(await step(parent, 'open', { path: '/dev/iommu' }, '0'), 'fd');
  await step(parent, 'md_check_refs', { fd: fd2, uptr: buffer, length: BUFFER_SIZE, refs: 0 }, '0');
  await step(parent, 'close', { fd: fd2 }, '0');
}

describe('change_process (iommufd.c FIXTURE change_process, TEST basic)', () => {
  it('account_none: default ctx, pages charged as USER; the forked child takes the pin over', async () => {
    await changeProcess('none');
  });

  it('account_user: RLIMIT_MODE=0; the forked child takes the pin over', async () => {
    await changeProcess('user');
  });

  it('account_mm: RLIMIT_MODE=1; VmLck moves with VmPin to the forked child', async () => {
    await changeProcess('mm');
  });
});
