// The adapters: every event type of the model is mapped (the union the exhaustive match is
// written over is exactly the machine's event types), every shim op they use exists in the shim,
// and the fixtures and mappings produce the shim calls the kernel tests use.
import { describe, expect, it } from 'vitest';
import type { StateNode } from 'xstate';
import { PathRun, type ReplayTarget, Unreplayable } from '../../conformance/adapters/adapter.ts';
import { EDU_ID, touchResult } from '../../conformance/adapters/bar-mmap.ts';
import { ADAPTERS, adapterFor, planRun, uuidFor } from '../../conformance/conform.ts';
import { generatePaths } from '../../conformance/paths.ts';
import { TEST_PCI_DEVICE } from '../../conformance/qemu/vm.ts';
import { absentTypes } from '../../conformance/replay.ts';
import { shimOps } from '../../conformance/shim/table.ts';
import { bindLines, checkAllow } from '../../conformance/target/qemu.ts';
import type { CallResult } from '../../conformance/target.ts';
import { findModel } from '../../explorer/registry.ts';

/** Every event type any variant's machine handles. */
async function machineEventTypes(id: string): Promise<string[]> {
  const model = await findModel(id);
  const types = new Set<string>();
  for (const v of model.variantNames) {
    const visit = (n: StateNode<any, any>) => {
      for (const t of n.transitions.keys()) types.add(t);
      for (const c of Object.values(n.states)) visit(c as StateNode<any, any>);
    };
    visit(model.variant(v).machine.root);
  }
  return [...types].sort();
}

const SHIM_OPS = shimOps();

/** true for an Unreplayable mapping; anything else is rethrown. */
const unreplayable = (e: unknown): true => {
  if (e instanceof Unreplayable) return true;
  throw e;
};
// session.ts rewrites these ops' arguments ({ child } -> port, { actor } -> pid)
const TS_ARGS = new Set(['fork', 'proc_status']);

/** Each call's problems against the shim's row: an unknown op, argument, or a missing required one. */
function rowProblems(o: { op: string; args: Record<string, unknown> }): string[] {
  const row = SHIM_OPS.get(o.op);
  if (!row) return [`${o.op}: no such op`];
  if (TS_ARGS.has(o.op)) return [];
  const given = Object.keys(o.args).filter((k) => o.args[k] !== undefined);
  return [
    ...given.filter((k) => !row.args.has(k)).map((k) => `${o.op}: unknown argument ${k}`),
    ...[...row.args].filter(([k, req]) => req && !given.includes(k)).map(([k]) => `${o.op}: missing ${k}`),
  ];
}

/**
 * A target that answers every op with success and plausible outputs; records the ops. `value`,
 * when given, answers pread by offset (a config space); else every pread reads 0x103.
 */
function recordingTarget(value?: (offset: number) => number) {
  const ops: { actor: string; op: string; args: Record<string, unknown> }[] = [];
  let fd = 10;
  const target: ReplayTarget = {
    actor: (actor) => ({
      call: async (op, args = {}): Promise<CallResult> => {
        ops.push({ actor, op, args });
        const out: Record<string, number | string> = {
          fd: fd++,
          ioas_id: 7,
          device_fd: 42,
          access_fd: 43,
          access_pages_id: 5,
          addr: 0x7f0000000000,
          group_path: '/dev/vfio/3',
          // bar-mmap: region offsets, a config read, VFIO_DEVICE_FLAGS_RESET
          offset: 0x10000000000,
          value: value && op === 'pread' ? value(Number(args.offset)) : 0x103,
          reset: 1,
          driver: 'vfio-pci',
          vm_pin_kb: 0,
          vm_lck_kb: 0,
        };
        return { status: 'done', seq: ops.length, ret: 0, errno: '0', out };
      },
    }),
    log: () => [],
  };
  return { target, ops };
}

/** The config space of a device with a PM capability at 0x60 behind an MSI-X one at 0x40, in D0 (PM_CTRL 8). */
const CONFIG = 0x10000000000;
const withPm = (off: number) =>
  ({
    [CONFIG + 0x4]: 0x103,
    [CONFIG + 0x34]: 0x40,
    [CONFIG + 0x40]: 0x11,
    [CONFIG + 0x41]: 0x60,
    [CONFIG + 0x60]: 0x01,
    [CONFIG + 0x64]: 0x8,
  })[off] ?? 0;

describe.each(Object.keys(ADAPTERS))('adapter %s', (id) => {
  const adapter = ADAPTERS[id];

  it('maps exactly the event types of the machine (a new event type fails here and in tsc)', async () => {
    expect([...adapter.eventTypes].sort()).toEqual(await machineEventTypes(id));
  });

  it('uses only ops and arguments the shim implements, in its fixture and in every call mapping', async () => {
    const model = await findModel(id);
    // change-process-mm/-none make the same calls as change-process with larger state spaces
    for (const variant of adapter.variants.filter((v) => !/^change-process-(mm|none)$/.test(v))) {
      const { target, ops } = recordingTarget();
      const paths = generatePaths(model.variant(variant));
      for (const p of paths.paths) {
        const run = new PathRun(target, 'x', [uuidFor(0, 0), uuidFor(0, 1)]);
        await adapter.setup(run, variant);
        for (const s of p.steps) {
          const m = adapter.map(s.event as any, s.actor, variant, run);
          // A mapping the target cannot perform ends the path there, as in the replay.
          if (m.kind === 'call' && (await m.run(run).then(() => false, unreplayable))) break;
        }
      }
      expect([...new Set(ops.flatMap(rowProblems))], `${id}/${variant}`).toEqual([]);
      expect(ops.length).toBeGreaterThan(0);
    }
  });
});

describe('bar-mmap adapter', () => {
  it('builds the model’s initial state: the vfio-pci device through a type1 container, BAR0 and config offsets, COMMAND memory on, BAR0’s value, the PM capability in D0, three forked actors', async () => {
    const { target, ops } = recordingTarget(withPm);
    const run = new PathRun(target, 'b1', []);
    await ADAPTERS['bar-mmap'].setup(run, 'current');
    expect(ops.map((o) => o.op)).toEqual([
      'open',
      'pci_group',
      'open',
      'vfio_group_set_container',
      'vfio_set_iommu',
      'vfio_group_get_device_fd',
      'vfio_device_get_info',
      'vfio_device_get_region_info',
      'vfio_device_get_region_info',
      'pread',
      'pread',
      'pread',
      'pread',
      'pread',
      'pread',
      'pread',
      'fork',
      'fork',
      'fork',
    ]);
    expect(ops.filter((o) => o.op === 'vfio_device_get_region_info').map((o) => o.args.index)).toEqual([
      0, 7,
    ]);
    // PCI_COMMAND, BAR0 offset 0, then the capability list: 0x34 -> 0x40 (MSI-X) -> 0x60 (PM), PM_CTRL
    expect(
      ops.filter((o) => o.op === 'pread').map((o) => [Number(o.args.offset) - CONFIG, o.args.size]),
    ).toEqual([
      [0x4, 2],
      [0, 4], // BAR0 offset 0 (this target gives both regions the same offset)
      [0x34, 1],
      [0x40, 1],
      [0x41, 1],
      [0x60, 1],
      [0x64, 2],
    ]);
    expect(run.sym.get('pm')).toBe(0x60);
  });

  it('a touch is a load: SIGBUS, or the value BAR0 read at setup; any other value is a divergence', () => {
    const done = (out: Record<string, number>) => ({ status: 'done' as const, errno: '0', out });
    expect(touchResult(done({ sigbus: 1, value: 0 }), EDU_ID).errno).toBe('SIGBUS');
    expect(touchResult(done({ sigbus: 0, value: EDU_ID }), EDU_ID).errno).toBe('0');
    expect(touchResult(done({ sigbus: 0, value: 0xffffffff }), EDU_ID).errno).toBe('VALUE_0xffffffff');
  });

  it('compares a load’s fault and SIGBUS with the model: a PTE serves it, none makes it fault, a SIGBUS is not counted', () => {
    const m = ADAPTERS['bar-mmap'].map({ type: 'UserATouch' }, 'userA', 'current');
    if (m.kind !== 'call' || !m.facts) throw new Error('UserATouch has no facts');
    const done = (out: Record<string, number>) => ({ status: 'done' as const, errno: '0', out });
    expect(m.facts.observed(done({ sigbus: 0, value: 1, minflt: 1 }))).toEqual({ sigbus: 0, minflt: 1 });
    const ctx = (pte: boolean) => ({ vma: { userA: { linked: true, pte }, userB: null } });
    expect(m.facts.predicted(ctx(true), 'userA', '0')).toEqual({ sigbus: 0, minflt: 0 });
    expect(m.facts.predicted(ctx(false), 'userA', '0')).toEqual({ sigbus: 0, minflt: 1 });
    expect(m.facts.predicted(ctx(false), 'userA', 'SIGBUS')).toEqual({ sigbus: 1, minflt: 0 });
  });

  it('writes PCI_COMMAND and PM_CTRL read-modify-write through the config region', async () => {
    const { target, ops } = recordingTarget(withPm);
    const run = new PathRun(target, 'b2', []);
    await ADAPTERS['bar-mmap'].setup(run, 'current');
    const write = async (e: { type: string } & Record<string, unknown>) => {
      const m = ADAPTERS['bar-mmap'].map(e, 'guest', 'current', run);
      if (m.kind === 'call') await m.run(run);
      return ops.at(-1);
    };
    expect(await write({ type: 'GuestCommandWrite', memory: false })).toMatchObject({
      op: 'pwrite',
      args: { offset: CONFIG + 0x4, size: 2, value: 0x101 },
    });
    expect(await write({ type: 'GuestPowerWrite', d3: true })).toMatchObject({
      op: 'pwrite',
      args: { offset: CONFIG + 0x64, size: 2, value: 0xb },
    });
    expect(await write({ type: 'GuestPowerWrite', d3: false })).toMatchObject({
      op: 'pwrite',
      args: { offset: CONFIG + 0x64, size: 2, value: 0x8 },
    });
  });

  it('D3 without a PM capability, an impossible reset, and a device left in D3 are refused', async () => {
    const { target } = recordingTarget((off) => (off === CONFIG + 0x34 ? 0 : 0x103));
    const run = new PathRun(target, 'b3', []);
    await ADAPTERS['bar-mmap'].setup(run, 'current');
    const d3 = ADAPTERS['bar-mmap'].map({ type: 'GuestPowerWrite', d3: true }, 'guest', 'current', run);
    await expect(d3.kind === 'call' ? d3.run(run) : Promise.resolve()).rejects.toThrow(
      /no PCI power-management/,
    );
    run.sym.set('resetWorks', 0);
    const reset = ADAPTERS['bar-mmap'].map({ type: 'VmmReset' }, 'vmm', 'current', run);
    await expect(reset.kind === 'call' ? reset.run(run) : Promise.resolve()).rejects.toThrow(
      /no VFIO_DEVICE_FLAGS_RESET/,
    );
    const inD3 = recordingTarget((off) => (off === CONFIG + 0x64 ? 0xb : withPm(off)));
    await expect(ADAPTERS['bar-mmap'].setup(new PathRun(inD3.target, 'b4', []), 'current')).rejects.toThrow(
      /in D3 after open/,
    );
  });
});

describe('container adapter', () => {
  it('builds the model’s initial state: container, the pinning mdev’s group, type1v2, the vfio-pci group, the device fd, guest memory', async () => {
    const { target, ops } = recordingTarget();
    const run = new PathRun(target, 'c1', [uuidFor(1, 0)]);
    await ADAPTERS.container.setup(run, 'current');
    expect(ops.map((o) => o.op)).toEqual([
      'open',
      'pin_create',
      'open',
      'vfio_group_set_container',
      'vfio_set_iommu',
      'pci_group',
      'open',
      'vfio_group_set_container',
      'vfio_group_get_device_fd',
      'memfd_create',
      'mmap',
    ]);
    expect(ops[0]).toMatchObject({ actor: 'c1-vmm', args: { path: '/dev/vfio/vfio' } });
    expect(ops[5].args).toEqual({ bdf: TEST_PCI_DEVICE });
    expect(ops[8].args).toMatchObject({ name: uuidFor(1, 0) });
  });

  it('names the VM’s test PCI device in the allow-list, so /init binds it to vfio-pci', () => {
    expect(ADAPTERS.container.allow([uuidFor(1, 0)])).toEqual([
      '/dev/vfio/vfio',
      `mdev:${uuidFor(1, 0)}`,
      `pci:${TEST_PCI_DEVICE}`,
    ]);
    expect(bindLines(['/dev/vfio/vfio', `pci:${TEST_PCI_DEVICE}`])).toContain(
      `echo vfio-pci > /sys/bus/pci/devices/${TEST_PCI_DEVICE}/driver_override`,
    );
    expect(bindLines(['/dev/vfio/vfio', `mdev:${uuidFor(1, 0)}`])).toBe('');
    expect(() => checkAllow(['pci:0000:00:10.0;reboot'])).toThrow(/pci:<DDDD:BB:DD.F>/);
  });

  it('replays the driver’s pins through the pinning mdev’s sysfs node from a process without the device fd', async () => {
    expect([...absentTypes(ADAPTERS.container, 'current')]).toEqual([]);
    expect(ADAPTERS.container.map({ type: 'VmmUnmapListLock' }, 'vmm', 'current').kind).toBe('internal');
    const { target, ops } = recordingTarget();
    const run = new PathRun(target, 'c', [uuidFor(1, 0), uuidFor(1, 1)]);
    await ADAPTERS.container.setup(run, 'current');
    const n = ops.length;
    for (const type of ['MdevPinPages', 'MdevUnpinPages']) {
      const m = ADAPTERS.container.map({ type, dma: 1 }, 'mdev', 'current', run);
      if (m.kind === 'call') await m.run(run);
    }
    expect(ops.slice(n).map((o) => `${o.actor} ${o.op} ${String(o.args.line)}`)).toEqual([
      'c-mdev pin_worker pin 0x101000 0x1000',
      'c-mdev pin_worker unpin 0x101000 0x1000',
    ]);
  });

  it('with the hotplug thread: a second instance in the container, its device opened by a forked process that keeps only its group', async () => {
    const { target, ops } = recordingTarget();
    const run = new PathRun(target, 'h', [uuidFor(2, 0), uuidFor(2, 1)]);
    await ADAPTERS.container.setup(run, 'current-hotplug');
    const forked = ops.findIndex((o) => o.op === 'fork');
    expect(ops[forked - 3]).toMatchObject({ op: 'pin_create', args: { uuid: uuidFor(2, 1) } });
    expect(ops.slice(forked + 1).map((o) => `${o.actor} ${o.op}`)).toEqual(
      Array.from({ length: 5 }, () => 'h-hotplug close'),
    );
    const m = ADAPTERS.container.map({ type: 'HotplugOpenDevice' }, 'hotplug', 'current-hotplug', run);
    if (m.kind === 'call') await m.run(run);
    expect(ops.at(-1)).toMatchObject({
      actor: 'h-hotplug',
      op: 'vfio_group_get_device_fd',
      args: { name: uuidFor(2, 1) },
    });
  });

  it('UNMAP_DMA of a dma, and of everything with VFIO_DMA_UNMAP_FLAG_ALL', async () => {
    const { target, ops } = recordingTarget();
    const run = new PathRun(target, 'c', ['u0']);
    await ADAPTERS.container.setup(run, 'current');
    const n = ops.length;
    for (const range of [1, 'all']) {
      const m = ADAPTERS.container.map({ type: 'VmmUnmapVaddr', range }, 'vmm', 'current', run);
      if (m.kind === 'call') await m.run(run);
    }
    expect(ops.slice(n).map((o) => o.args)).toEqual([
      { fd: 10, iova: 0x101000, size: 4096, flags: 'VADDR' },
      { fd: 10, iova: 0, size: 0, flags: 'ALL|VADDR' },
    ]);
  });

  it('after the VMM exited, its closes are real calls by the reaper that kept duplicates of its fds', async () => {
    const { target, ops } = recordingTarget();
    const run = new PathRun(target, 'c', ['u0']);
    await ADAPTERS.container.setup(run, 'current');
    for (const type of ['VmmExit', 'VmmCloseContainer']) {
      const m = ADAPTERS.container.map({ type }, 'vmm', 'current', run);
      expect(m.kind).toBe('call');
      if (m.kind === 'call') await m.run(run);
    }
    expect(ops.slice(-4).map((o) => `${o.actor} ${o.op}`)).toEqual([
      'c-vmm fork',
      'c-vmm exit',
      'c-reaper close',
      'c-reaper close',
    ]);
  });
});

describe('planning a run', () => {
  it('refuses a model without an adapter, a variant without a fixture, and an unknown path id', async () => {
    expect(() => adapterFor('nope', 'x')).toThrow("no conformance adapter for model 'nope'");
    expect(() => adapterFor('bar-mmap', 'jason-sketch')).toThrow('has no fixture for variant');
    expect(() => adapterFor('ioas', 'access-unmap-noncompliant')).toThrow('has no fixture for variant');
    const model = await findModel('exec-handoff');
    const file = generatePaths(model.variant('iommufd-change-process'));
    expect(() => planRun(model, 'iommufd-change-process', file, 'nope')).toThrow("no path 'nope'");
    const one = planRun(model, 'iommufd-change-process', file, file.paths[1].id);
    expect(one.paths).toHaveLength(1);
    expect(one.numbers).toEqual([1]);
  });
});

describe('vfio-mc conform: usage errors exit 2 before any VM boots', () => {
  it.each([
    [['conform', 'example-locks'], "no conformance adapter for model 'example-locks'"],
    [['conform', 'ioas', '--variant', 'access-unmap-noncompliant'], 'has no fixture for variant'],
    [['conform', 'container', '--variant', 'current', '--path', 'nope'], "no path 'nope'"],
    [
      ['conform', 'container', '--kernel', '/nonexistent/bzImage'],
      'kernel image /nonexistent/bzImage does not exist',
    ],
    [['conform', 'container', '--fail-nth', 'x'], '--fail-nth must be STEP:N'],
    [['conform', 'container', '--target', 'moon'], "argument 'moon' is invalid"],
  ])('%j', async (argv, message) => {
    const { main } = await import('../../cli/main.ts');
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      err.push(String(s));
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await main(argv)).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(err.join('')).toContain(message);
  });
});

describe('the fixtures stand for the models at their default sizes', () => {
  const initial = async (model: string, variant: string, params: Record<string, number>) => {
    const m = await findModel(model);
    const v = m.variant(variant, params);
    return v.machine.config.context as any;
  };

  it('exec-handoff: a path at maps=3 is unfit from its first state, at maps=2 it is not', async () => {
    const a = adapterFor('exec-handoff', 'iommufd-change-process');
    const e = { type: 'HolderIoasChangeProcess' };
    expect(a.unfit?.(await initial('exec-handoff', 'iommufd-change-process', {}), e, 'x')).toBeNull();
    expect(a.unfit?.(await initial('exec-handoff', 'iommufd-change-process', { maps: 3 }), e, 'x')).toBe(
      'the fixture maps 2 areas (maps=2); this path has 3',
    );
  });

  it('ioas: a path at areas=3 (RLIMIT_MEMLOCK scaled) is unfit, at areas=2 it is not', async () => {
    const a = adapterFor('ioas', 'change-process');
    const e = { type: 'VmmIoasMap', ioas: 1, slot: 0 };
    expect(a.unfit?.(await initial('ioas', 'change-process', {}), e, 'change-process')).toBeNull();
    expect(a.unfit?.(await initial('ioas', 'change-process', { areas: 3 }), e, 'change-process')).toBe(
      'the fixture is ioas/change-process at its default size (areas=2, RLIMIT_MEMLOCK 4 pages)',
    );
  });

  it('container: the events of a third dma or of the second mdev are unreplayable', async () => {
    const a = adapterFor('container', 'current');
    const run = (e: Record<string, unknown>) => {
      const m = a.map({ type: 'VmmMapDma', ...e }, 'vmm', 'current');
      return m.kind === 'call' ? m.run({} as PathRun) : Promise.resolve('not a call');
    };
    await expect(run({ dma: 2 })).rejects.toThrow('dma2: the fixture maps 2 dmas (dmas=2)');
    await expect(run({ type: 'VmmOpenDevice', dev: 1 })).rejects.toThrow(
      'the second mdev (mdevs=2) has no fixture in this adapter',
    );
  });
});
