import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Conformance on the real 7.3 kernel (issue 7), the CI subset: the full coverage sets of
// container/current (with the VM's vfio-pci group), exec-handoff/iommufd-change-process and ioas/change-process replayed in
// one VM (a few seconds of replay each), a mutant model (v6.1's type1) shown to diverge on 7.3,
// fail-nth on a CHANGE_PROCESS, and the UAPI-FACTS §7 probes the mock reaches (U1, U3).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allowList,
  type ConformRun,
  forReplay,
  formatConformReport,
  planRun,
  runConformance,
} from '../conform.ts';
import { checkPathFile, generatePaths } from '../paths.ts';
import { openTarget, outNum, type Target } from '../target.ts';
import { findModel } from '../../explorer/registry.ts';
import { PAGE_SIZE, step, vm } from './steps.ts';

const U2_PATHS = fileURLToPath(
  new URL('../../test/conformance/traces/u2-none-change-then-unmap.paths.json', import.meta.url),
);

const WRONG_MODEL = fileURLToPath(
  new URL('../../test/conformance/fixtures/container-61.ts', import.meta.url),
);

let target: Target;
const runs: Record<string, ConformRun> = {};

async function plan(model: string, variant: string): Promise<ConformRun> {
  const m = await findModel(model);
  return planRun(m, variant, generatePaths(m.variant(variant)));
}

beforeAll(async () => {
  runs.container = await plan('container', 'current');
  runs.handoff = await plan('exec-handoff', 'iommufd-change-process');
  runs.handoffMm = await plan('exec-handoff', 'iommufd-change-process-noholder-mm');
  runs.ioas = await plan('ioas', 'change-process');
  runs.barMmap = await plan('bar-mmap', 'current');
  const allow = [...new Set(Object.values(runs).flatMap(allowList))];
  target = await openTarget({ kind: 'qemu', allow });
});

afterAll(async () => {
  await target?.close();
});

describe('conformance of the models on Linux 7.3.4 (vfio-mc conform)', () => {
  it('bar-mmap/current: every path matches on the root-port nvme (mmap, loads, SIGBUS, COMMAND and PM_CTRL writes, reset), faults and SIGBUS compared on every load', async () => {
    const r = await runConformance(runs.barMmap, target);
    const text = formatConformReport(r);
    expect(
      r.paths.filter((p) => p.status !== 'match'),
      text,
    ).toEqual([]);
    // every reachable uAPI transition, D3 included (the complete search leaves the rest unreachable)
    expect(r.coverage.complete).toBe(true);
    expect(r.coverage.matched, text).toBe(r.coverage.covered);
    for (const k of [
      'UserATouch→0',
      'UserATouch→SIGBUS',
      'GuestCommandWrite→0',
      'GuestPowerWrite→0',
      'VmmReset→0',
      'UserAMunmap→0',
    ]) {
      expect(r.coverage.results[k], `${k}\n${text}`).toBe('matched');
    }
    expect(r.facts.calls).toBeGreaterThan(0);
    expect(r.facts, text).toMatchObject({ compared: r.facts.calls, agreed: r.facts.calls, notCompared: 0 });
  });

  it('container/current: every path matches, with a real IOMMU domain (the vfio-pci group): VADDR handoff and VmLck', async () => {
    const r = await runConformance(runs.container, target);
    const text = formatConformReport(r);
    expect(
      r.paths.filter((p) => p.status !== 'match'),
      text,
    ).toEqual([]);
    // 16 of 18 (the pinning mdev's driver steps included); the other 2 are unreachable in current
    expect(r.coverage.matched).toBe(r.coverage.covered);
    // the results only a group with an IOMMU domain reaches (an emulated group makes VADDR unmap EBUSY)
    for (const k of ['VmmUnmapVaddr→0', 'VmmUnmapVaddr→EINVAL', 'VmmMapVaddr→0', 'VmmAttachGroup→EBUSY']) {
      expect(r.coverage.results[k], `${k}\n${text}`).toBe('matched');
    }
    // VmLck is read after every call: type1 pins at MAP_DMA through the domain and charges locked_vm
    const lck = r.paths.flatMap((p) =>
      p.steps.flatMap((s) =>
        s.ops.filter((o) => o.op === 'proc_status').map((o) => Number(o.out?.vm_lck_kb)),
      ),
    );
    expect(new Set(lck)).toEqual(new Set([0, 4]));
  });

  it('exec-handoff/iommufd-change-process: every path matches, VmPin/VmLck checked after each call', async () => {
    const r = await runConformance(runs.handoff, target);
    expect(
      r.paths.every((p) => p.status === 'match'),
      formatConformReport(r),
    ).toBe(true);
    expect(r.coverage.matched).toBe(r.coverage.covered);
    expect(r.paths.flatMap((p) => p.steps.flatMap((s) => s.ops.map((o) => o.op)))).toContain('proc_status');
  });

  it("U1 settled: MM mode, the image's CHANGE_PROCESS after exec is EINVAL with the WARN the model predicts", async () => {
    const r = await runConformance(runs.handoffMm, target);
    expect(
      r.paths.every((p) => p.status === 'match'),
      formatConformReport(r),
    ).toBe(true);
    const warned = r.paths.flatMap((p) => p.steps).filter((s) => s.splat);
    expect(warned.map((s) => [s.event.type, s.observed])).toEqual([['ImageIoasChangeProcess', 'EINVAL']]);
    expect(warned[0].splat).toContain('iommufd_ioas_change_process');
  });

  it('ioas/change-process: every path matches, VmPin/VmLck included', async () => {
    const r = await runConformance(runs.ioas, target);
    expect(
      r.paths.every((p) => p.status === 'match'),
      formatConformReport(r),
    ).toBe(true);
    expect(r.coverage.matched).toBe(r.coverage.covered);
  });

  it("a wrong model diverges: v6.1's type1 (VADDR unmap allowed with an mdev) replayed on 7.3", async () => {
    const model = await findModel('container');
    const current = model.variant('current');
    // the 6.1 machine under the name of the variant the adapter has a fixture for
    const wrong = forReplay({ ...current, machine: model.variant('vfio-wait').machine });
    const file = generatePaths(wrong);
    const run: ConformRun = {
      ...planRun(model, 'current', generatePaths(current)),
      variant: wrong,
      file,
      paths: file.paths,
      numbers: file.paths.map((_, n) => n),
    };
    const r = await runConformance(run, target);
    const diverged = r.paths.filter((p) => p.status === 'diverge');
    expect(diverged.length).toBeGreaterThan(0);
    const first = diverged[0].steps[diverged[0].failedStep ?? 0];
    expect(first.event.type).toBe('VmmUnmapVaddr');
    expect(first.observed).toBe('EBUSY');
    expect(first.allowed).not.toContain('EBUSY');
  });

  it('fail-nth on a MAP_FILE: the failed call changed nothing the model tracks', async () => {
    // (CHANGE_PROCESS with one IOAS allocates nothing: iommufd_take_all_iova_rwsem's xa_store of
    // index 0 needs no node, so fail-nth cannot fail it.) The rest of the path, replayed from the
    // model state before the failed map, must still fit: results and VmPin/VmLck.
    const longest = [...runs.ioas.paths]
      .filter((p) => p.steps.some((s) => s.event.type === 'VmmIoasMapFile'))
      .sort((a, b) => b.steps.length - a.steps.length)[0];
    const at = longest.steps.findIndex((s) => s.event.type === 'VmmIoasMapFile');
    const run = { ...runs.ioas, paths: [longest], numbers: [100] };
    let injected = 0;
    for (const nth of [1, 2, 3, 4]) {
      const r = await runConformance(run, target, { failAt: { step: at, nth } });
      if (r.paths[0].steps[at]?.note?.startsWith('fail-nth')) injected++;
      expect(r.paths[0].status, formatConformReport(r)).toBe('match');
    }
    expect(injected).toBeGreaterThan(0);
  });

  it("U2 settled: NONE pages (CAP_IPC_LOCK kept): CHANGE_PROCESS leaves pinned_vm behind, the unmap drives the new owner's VmPin below 0", async () => {
    const model = await findModel('ioas');
    const variant = model.variant('change-process-none');
    const file = checkPathFile(JSON.parse(readFileSync(U2_PATHS, 'utf8')), U2_PATHS, variant);
    const r = await runConformance(planRun(model, variant.name, file), target);
    expect(r.paths[0].status, formatConformReport(r)).toBe('match');
    // the VmPin the model predicted and the kernel printed after the unmap: the child's is -4 kB
    const unmap = r.paths[0].steps.find((s) => s.event.type === 'VmmIoasUnmap');
    const pins = unmap?.ops
      .filter((o) => o.op === 'proc_status')
      .map((o) => [o.args.actor, o.out?.vm_pin_kb]);
    expect(pins?.map(([, kb]) => kb)).toEqual([4, '18446744073709551612']);
  });

  it('U3 settled: USER mode, same uid: CHANGE_PROCESS needs twice the pinned pages of RLIMIT_MEMLOCK', async () => {
    // two one-page MAP_FILE areas pinned by a mock domain: the new owner is charged before the
    // old one is uncharged (PAGES:iopt_change_process), so 3 pages of headroom are not enough
    for (const [pages, errno] of [
      [3, 'ENOMEM'],
      [4, '0'],
    ] as const) {
      const a = target.actor(`u3-${pages}`);
      const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
      await step(a, 'drop_cap', { cap: 'IPC_LOCK' }, '0');
      await step(a, 'setrlimit', { resource: 'MEMLOCK', cur: pages * PAGE_SIZE }, '0');
      const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
      await step(a, 'mock_domain', { fd, ioas }, '0');
      const mfd = outNum(await step(a, 'memfd_create', { name: 'g', size: 2 * PAGE_SIZE }, '0'), 'fd');
      for (const slot of [0, 1]) {
        await step(
          a,
          'ioas_map_file',
          {
            fd,
            ioas,
            mfd,
            start: slot * PAGE_SIZE,
            length: PAGE_SIZE,
            iova: (1 << 24) + slot * PAGE_SIZE,
            flags: 'FIXED_IOVA|READABLE|WRITEABLE',
          },
          '0',
        );
      }
      const child = `u3-${pages}-child`;
      await step(a, 'fork', { child }, '0');
      const c = target.actor(child);
      await step(c, 'ioas_change_process', { fd }, errno);
      expect(await vm(c, child)).toEqual(errno === '0' ? { pin: 8, lck: 0 } : { pin: 0, lck: 0 });
      expect(await vm(c, a.name)).toEqual(errno === '0' ? { pin: 0, lck: 0 } : { pin: 8, lck: 0 });
      await step(c, 'exit', { code: 0 }, '0');
      await step(a, 'exit', { code: 0 }, '0');
    }
  });

  it('U4 settled: IOAS_UNMAP is not atomic across areas: a fully covered area is gone when a later one fails', async () => {
    const a = target.actor('u4');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const ioas = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    const buf = outNum(
      await step(a, 'mmap', { length: 3 * PAGE_SIZE, flags: 'SHARED|ANONYMOUS' }, '0'),
      'addr',
    );
    const base = 1 << 24;
    const map = (off: number, pages: number) =>
      step(
        a,
        'ioas_map',
        {
          fd,
          ioas,
          vaddr: buf + off * PAGE_SIZE,
          length: pages * PAGE_SIZE,
          iova: base + off * PAGE_SIZE,
          flags: 'FIXED_IOVA|READABLE|WRITEABLE',
        },
        '0',
      );
    await map(0, 1); // area A: page 0
    await map(1, 2); // area B: pages 1-2
    // [page 0, page 1] covers A and half of B: IOPT:iopt_unmap_iova_range removes A, then ENOENT on B
    await step(a, 'ioas_unmap', { fd, ioas, iova: base, length: 2 * PAGE_SIZE }, 'ENOENT');
    // A is gone (its range maps again), B is intact (unmapping it whole works)
    await map(0, 1);
    const b = await step(a, 'ioas_unmap', { fd, ioas, iova: base + PAGE_SIZE, length: 2 * PAGE_SIZE }, '0');
    expect(b.out.length).toBe(2 * PAGE_SIZE);
    await step(a, 'exit', { code: 0 }, '0');
  });

  it('U5 settled: MAP_FILE of a non-memfd fd succeeds without a domain and fails with EINVAL with one', async () => {
    const a = target.actor('u5');
    const fd = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd');
    const other = outNum(await step(a, 'open', { path: '/dev/iommu' }, '0'), 'fd'); // not shmem, not a dma-buf
    const bare = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    const args = {
      fd,
      mfd: other,
      start: 0,
      length: PAGE_SIZE,
      iova: 1 << 24,
      flags: 'FIXED_IOVA|READABLE|WRITEABLE',
    };
    // IOPT:iopt_map_file_pages does not check the file type; nothing pins without a domain
    await step(a, 'ioas_map_file', { ...args, ioas: bare }, '0');
    // with a domain the pages are pinned at map time: mm/gup.c:memfd_pin_folios refuses a non-shmem file
    const withDomain = outNum(await step(a, 'ioas_alloc', { fd }, '0'), 'ioas_id');
    await step(a, 'mock_domain', { fd, ioas: withDomain }, '0');
    await step(a, 'ioas_map_file', { ...args, ioas: withDomain }, 'EINVAL');
    // and attaching a domain to the IOAS holding the lazy map fails then, at attach time
    const attach = await a.call('mock_domain', { fd, ioas: bare });
    expect(attach.errno).not.toBe('0');
    await step(a, 'exit', { code: 0 }, '0');
  });

  it('the CLI: a divergence exits 1 with the replay command and a JUnit failure', async () => {
    const { main } = await import('../../cli/main.ts');
    const junit = join(mkdtempSync(join(tmpdir(), 'conform-')), 'junit.xml');
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => {
      out.push(String(s));
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(['conform', WRONG_MODEL, '--variant', 'current', '--junit', junit, '--no-progress']);
    } finally {
      process.stdout.write = write;
    }
    const text = out.join('');
    expect(code, text).toBe(1);
    expect(text).toContain('DIVERGE container/current/');
    expect(text).toContain(
      `replay alone: npx tsx cli/main.ts conform ${WRONG_MODEL} --variant current --path container/current/p`,
    );
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain('<failure message="VmmUnmapVaddr by vmm: observed EBUSY');
  });
});
