/**
 * `vfio-mc export kselftest`: one conformance path as a C test in the style of
 * tools/testing/selftests/iommu (kselftest_harness.h FIXTURE/TEST_F, the errno asserted at
 * every step, VmPin/VmLck checked where the model predicts them).
 *
 * Nothing about the kernel is written twice: the model's adapter (conformance/adapters/)
 * already knows which shim ops stand for each event and how the fixture is built. The path
 * is "replayed" against a recording target that answers every op the way the model
 * predicts (a call gets the errno the model allows, a fixture op succeeds, outputs are
 * unique placeholder numbers), and the recorded ops become C: each op is one call of
 * conformance/kselftest/vfio_mc_actors.h in the process (actor) that made it, and a
 * placeholder in an argument becomes the fixture variable that received it.
 */
import type { EventObject } from 'xstate';
import { ModelError, type ResolvedVariant } from '../explorer/model.ts';
import { type Adapter, type Observation, PathRun, type ReplayTarget } from './adapters/adapter.ts';
import type { ConformancePath } from './paths.ts';
import { absentTypes } from './replay.ts';
import { ModelTracker } from './replay-model.ts';
import type { Args, CallResult } from './target.ts';

/** Placeholders: far apart, so that "placeholder + offset" (buf + 2 pages) reads back uniquely. */
const PLACEHOLDER_BASE = 0x7000_0000;
const PLACEHOLDER_STRIDE = 0x100_0000;

/** Outputs the adapters read from each op (conformance/README.md, the shim's op table). */
const OUTPUTS: Readonly<Record<string, readonly string[]>> = {
  open: ['fd'],
  memfd_create: ['fd'],
  ioas_alloc: ['ioas_id'],
  mmap: ['addr'],
  create_access: ['access_fd'],
  access_pages: ['access_pages_id'],
  fork: ['pid'],
  mock_domain: ['stdev_id', 'hwpt_id', 'idev_id'],
  vfio_group_get_device_fd: ['device_fd'],
};

/** String outputs the adapters check (the container's groups); the C then refuses these ops. */
const STRING_OUTPUTS: Readonly<Record<string, Record<string, string>>> = {
  mtty_create: { group_path: '/dev/vfio/placeholder' },
  pci_group: { group_path: '/dev/vfio/placeholder', driver: 'vfio-pci' },
};

interface Recorded {
  readonly actor: string;
  readonly op: string;
  readonly args: Args;
  /** '0' or the errno name the model predicts. */
  readonly errno: string;
  /** output key → placeholder */
  readonly outs: Record<string, number>;
}

/** A target that performs nothing: it records the ops and answers as the model predicts. */
class RecordingTarget implements ReplayTarget {
  readonly ops: Recorded[] = [];
  /** The errno of the op that stands for the path's call (set by the exporter). */
  callErrno: string | undefined;
  private next = 0;

  actor(name: string) {
    return {
      call: async (op: string, args: Args = {}): Promise<CallResult> => {
        const errno = this.callErrno ?? '0';
        this.callErrno = undefined;
        const outs: Record<string, number> = {};
        if (errno === '0')
          for (const k of OUTPUTS[op] ?? []) outs[k] = PLACEHOLDER_BASE + PLACEHOLDER_STRIDE * this.next++;
        this.ops.push({ actor: name, op, args, errno, outs });
        const out = { ...STRING_OUTPUTS[op], ...outs };
        return { status: 'done', seq: 0, ret: errno === '0' ? 0 : -1, errno, out };
      },
    };
  }

  log(): string[] {
    return [];
  }
}

/** A PathRun whose uAPI call (not its fixture ops) gets the model's errno. */
class ExportRun extends PathRun {
  constructor(
    readonly recorder: RecordingTarget,
    prefix: string,
    uuids: readonly string[],
  ) {
    super(recorder, prefix, uuids);
  }

  expected: string | undefined;

  override async call(modelActor: string, op: string, args: Args = {}) {
    this.recorder.callErrno = this.expected;
    this.expected = undefined;
    return super.call(modelActor, op, args);
  }
}

export interface ExportedStep {
  readonly index: number;
  readonly actor: string;
  readonly event: EventObject;
  readonly errno: string;
  /** Ops recorded for this step, the last one being the call. */
  readonly ops: readonly Recorded[];
  /** VmPin/VmLck the model predicts after the step (per model actor, kB), when it predicts one value. */
  readonly vm?: Observation;
}

export interface Exported {
  readonly fixture: readonly Recorded[];
  /** VmPin/VmLck the model predicts right after the fixture (its initial state). */
  readonly initialVm?: Observation;
  readonly steps: readonly ExportedStep[];
  /** sym name → placeholder, for naming the C variables. */
  readonly names: ReadonlyMap<number, string>;
  readonly actors: readonly string[];
}

/** The errno a call must give: the one the model allows, or the path's own among several. */
export function expectedResult(
  allowed: ReadonlyMap<string, unknown>,
  predicted: string | undefined,
  e: EventObject,
) {
  const results = [...allowed.keys()].filter((r) => r !== 'blocked');
  if (results.length === 0)
    throw new ModelError(
      `${e.type}: the model says this call blocks for good; a C test cannot wait for that`,
    );
  if (results.length === 1) return results[0];
  if (predicted !== undefined && results.includes(predicted)) return predicted;
  throw new ModelError(
    `${e.type}: the model allows ${results.join(' | ')} here and the path names none of them`,
  );
}

/** Runs the path on the model and the adapter against the recording target. */
export async function recordPath(
  variant: ResolvedVariant,
  adapter: Adapter,
  path: ConformancePath,
): Promise<Exported> {
  const recorder = new RecordingTarget();
  const run = new ExportRun(recorder, 'x', ['5f1d3a7e-0c0f-4c6b-9d6e-00000000e001']);
  const tracker = new ModelTracker(variant, absentTypes(adapter, variant.name));
  const names = new Map<number, string>();
  /** Variables: the adapter's symbol (fd, memfd, ioas1, buf) or, for an output it keeps in a local, the output's name. */
  const learn = (ops: readonly Recorded[]) => {
    for (const [k, v] of run.sym) if (v >= PLACEHOLDER_BASE && !names.has(v)) names.set(v, k);
    for (const o of ops)
      for (const [k, v] of Object.entries(o.outs)) if (!names.has(v)) names.set(v, `${k}_${names.size}`);
  };
  try {
    await adapter.setup(run, variant.name);
  } catch (e) {
    throw new ModelError(`the ${adapter.model} fixture cannot be exported: ${(e as Error).message}`);
  }
  const fixture = recorder.ops.splice(0);
  learn(fixture);
  const initial = await vmOf(adapter, tracker, run);
  const steps: ExportedStep[] = [];
  for (const [index, step] of path.steps.entries()) {
    const m = adapter.map(step.event as any, step.actor, variant.name, run);
    if (m.kind !== 'call') continue;
    const allowed = tracker.allowed(step.actor, step.event);
    if (allowed.size === 0)
      throw new ModelError(`step ${index + 1}: ${step.event.type} is not enabled on the model`);
    const errno = m.compare === 'success' ? '0' : expectedResult(allowed, step.result, step.event);
    run.expected = errno;
    await m.run(run);
    const states = new Map<string, unknown>();
    for (const [r, set] of allowed)
      if (r === errno || (m.compare === 'success' && r !== 'blocked'))
        for (const [k, s] of set) states.set(k, s);
    tracker.commit(states);
    const ops = recorder.ops.splice(0);
    learn(ops);
    steps.push({
      index,
      actor: step.actor,
      event: step.event,
      errno,
      ops,
      ...(await vmOf(adapter, tracker, run)),
    });
  }
  const actors = [...new Set([...fixture, ...steps.flatMap((s) => s.ops)].map((o) => o.actor))];
  return { fixture, ...(initial.vm && { initialVm: initial.vm }), steps, names, actors };
}

/**
 * The VmPin/VmLck the model predicts for the processes the adapter observes, if it predicts one
 * value. The adapter's own observe() runs against the recorder only to learn which processes
 * those are; its proc_status ops are dropped.
 */
async function vmOf(adapter: Adapter, tracker: ModelTracker, run: ExportRun): Promise<{ vm?: Observation }> {
  if (!adapter.predict || !adapter.observe) return {};
  const shape = await adapter.observe(run);
  run.recorder.ops.splice(0);
  const values = tracker.values((c) => adapter.predict?.(c, shape) ?? {});
  return values.length === 1 ? { vm: values[0] } : {};
}

export interface KselftestMeta {
  /** The command that made the file (for its header). */
  readonly command: string;
  readonly model: string;
  readonly variant: string;
  readonly pathId: string;
  /** FIXTURE name and TEST_F name. */
  readonly fixture: string;
  readonly test: string;
  /** Lines of prose for the header (what the test is about). */
  readonly about?: readonly string[];
}

const ident = (s: string) => s.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '');
const hex = (n: number) => (n >= 0x1000 ? `0x${n.toString(16)}` : String(n));

/** C for one recorded op: the vfio_mc_actors.h call, given C expressions for args and outputs. */
type Emit = (
  o: Recorded,
  arg: (k: string) => string,
  out: (k: string) => string,
  actor: (name: string) => number,
) => string;

const keepList = (o: Recorded, arg: (k: string) => string) => {
  const keep = String(o.args.keep ?? '')
    .split(',')
    .filter(Boolean);
  if (keep.length > 5)
    throw new ModelError(`exec keeps ${keep.length} fds; vfio_mc_actors.h passes at most 5`);
  return [String(keep.length), ...keep.map((v) => arg(`@${v}`))].join(', ');
};

/** Shim ops (conformance/README.md) the iommufd adapters use, in vfio_mc_actors.h. */
const EMIT: Readonly<Record<string, Emit>> = {
  open: (o, _a, out) => `vmc_open(N, ${JSON.stringify(String(o.args.path))}, ${out('fd')})`,
  close: (_o, a) => `vmc_close(N, ${a('fd')})`,
  drop_cap: (o) => {
    if (o.args.cap !== 'IPC_LOCK')
      throw new ModelError(`drop_cap ${String(o.args.cap)}: only IPC_LOCK is exported`);
    return 'vmc_drop_cap(N)';
  },
  option: (o, a) => {
    if (o.args.option_id !== 'RLIMIT_MODE' || o.args.op !== 'SET' || Number(o.args.val64) !== 1)
      throw new ModelError(`option ${JSON.stringify(o.args)}: only RLIMIT_MODE SET 1 is exported`);
    return `vmc_rlimit_mode_mm(N, ${a('fd')})`;
  },
  setrlimit: (o, a) => {
    if (o.args.resource !== 'MEMLOCK')
      throw new ModelError(`setrlimit ${String(o.args.resource)}: only MEMLOCK is exported`);
    return `vmc_setrlimit_memlock(N, ${a('cur')})`;
  },
  ioas_alloc: (_o, a, out) => `vmc_ioas_alloc(N, ${a('fd')}, ${out('ioas_id')})`,
  mock_domain: (_o, a) => `vmc_mock_domain(N, ${a('fd')}, ${a('ioas')})`,
  memfd_create: (_o, a, out) => `vmc_memfd(N, ${a('size')}, ${out('fd')})`,
  mmap: (o, a, out) =>
    `vmc_mmap(N, ${a('length')}, ${o.args.fd === undefined ? '-1' : a('fd')}, ${out('addr')})`,
  ioas_map: (_o, a) =>
    `vmc_ioas_map(N, ${a('fd')}, ${a('ioas')}, ${a('vaddr')}, ${a('iova')}, ${a('length')})`,
  ioas_map_file: (_o, a) =>
    `vmc_ioas_map_file(N, ${a('fd')}, ${a('ioas')}, ${a('mfd')}, ${a('iova')}, ${a('length')}, ${a('start')})`,
  ioas_copy: (_o, a) =>
    `vmc_ioas_copy(N, ${a('fd')}, ${a('dst_ioas')}, ${a('src_ioas')}, ${a('dst_iova')}, ${a('length')}, ${a('src_iova')})`,
  ioas_unmap: (_o, a) => `vmc_ioas_unmap(N, ${a('fd')}, ${a('ioas')}, ${a('iova')}, ${a('length')})`,
  ioas_change_process: (_o, a) => `vmc_change_process(N, ${a('fd')})`,
  destroy: (_o, a) => `vmc_destroy(N, ${a('fd')}, ${a('id')})`,
  create_access: (_o, a, out) => `vmc_create_access(N, ${a('fd')}, ${a('ioas')}, ${out('access_fd')})`,
  access_pages: (_o, a, out) =>
    `vmc_access_pages(N, ${a('fd')}, ${a('access_fd')}, ${a('iova')}, ${a('length')}, ${out('access_pages_id')})`,
  destroy_access_pages: (_o, a) => `vmc_destroy_access_pages(N, ${a('fd')}, ${a('access_fd')}, ${a('id')})`,
  fork: (o, _a, _out, actor) => `vmc_fork(N, ${actor(String(o.args.child))})`,
  exec: (o, a) => `vmc_exec(N, ${keepList(o, a)})`,
  exit: () => 'vmc_exit(N)',
};

/** The C expression for a number: a fixture variable (+ offset) or a literal. */
function cValue(v: number, names: ReadonlyMap<number, string>): string {
  for (const [p, name] of names) {
    if (v >= p && v < p + PLACEHOLDER_STRIDE && p >= PLACEHOLDER_BASE) {
      const off = v - p;
      return off === 0 ? `self->${ident(name)}` : `self->${ident(name)} + ${hex(off)}`;
    }
  }
  if (v >= PLACEHOLDER_BASE)
    throw new ModelError(`an output of an earlier op (0x${v.toString(16)}) that no variable holds`);
  return hex(v);
}

function cCall(
  o: Recorded,
  names: ReadonlyMap<number, string>,
  actorIndex: (name: string) => number,
): string {
  const emit = EMIT[o.op];
  if (!emit)
    throw new ModelError(
      `shim op '${o.op}' has no C counterpart in vfio_mc_actors.h (exported: ${Object.keys(EMIT).join(', ')})`,
    );
  const arg = (k: string) => {
    const raw = k.startsWith('@') ? k.slice(1) : o.args[k];
    if (raw === undefined) throw new ModelError(`op '${o.op}' has no argument '${k}'`);
    return cValue(Number(raw), names);
  };
  const out = (k: string) => {
    const p = o.outs[k];
    const name = p === undefined ? undefined : names.get(p);
    return name ? `&self->${ident(name)}` : 'NULL';
  };
  return emit(o, arg, out, actorIndex).replace('(N', `(${actorIndex(o.actor)}`);
}

const assertErrno = (errno: string, call: string) =>
  errno === '0' ? `ASSERT_EQ(0, ${call});` : `VMC_ASSERT_ERRNO(${errno}, ${call});`;

/** The C test file. */
export function formatKselftest(exp: Exported, meta: KselftestMeta): string {
  const actorIndex = (name: string) => {
    const i = exp.actors.indexOf(name);
    if (i < 0) throw new ModelError(`no actor ${name}`);
    return i;
  };
  const modelIndex = (modelActor: string) => exp.actors.findIndex((a) => a.endsWith(`-${modelActor}`));
  const fields = [...new Set(exp.names.values())].map(ident).sort();
  const op = (o: Recorded) => `\t${assertErrno(o.errno, cCall(o, exp.names, actorIndex))}`;
  const body: string[] = [];
  const vmChecks = (vm: Observation | undefined) => {
    for (const [a, v] of Object.entries(vm ?? {})) {
      const n = modelIndex(a);
      if (n < 0) continue;
      body.push(`\tASSERT_EQ(${v.pinKb}, vmc_vm_pin_kb(${n})); /* VmPin of ${a} */`);
      body.push(`\tASSERT_EQ(${v.lckKb}, vmc_vm_lck_kb(${n})); /* VmLck of ${a} */`);
    }
  };
  if (exp.initialVm) {
    body.push("\t/* the fixture: the model's initial state */");
    vmChecks(exp.initialVm);
  }
  for (const s of exp.steps) {
    const args = Object.entries(s.event)
      .filter(([k]) => k !== 'type')
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ');
    body.push(
      `\t/* step ${s.index + 1}, ${s.actor}: ${s.event.type}${args ? `(${args})` : ''}, the model predicts ${s.errno === '0' ? 'success' : s.errno} */`,
    );
    body.push(...s.ops.map(op));
    vmChecks(s.vm);
  }
  const about = (meta.about ?? []).map((l) => ` * ${l}`.trimEnd());
  return [
    '// SPDX-License-Identifier: GPL-2.0-only',
    '/*',
    ' * Generated by',
    ` *   ${meta.command}`,
    ` * from the conformance path ${meta.pathId} of the vfio-mc model`,
    ` * ${meta.model}, with every result as its variant '${meta.variant}'`,
    ' * predicts it: each step asserts its errno, and VmPin/VmLck of every process are checked',
    ' * after each step where the model predicts them.',
    ...(about.length ? [' *', ...about] : []),
    ' */',
    '#include "vfio_mc_actors.h"',
    '',
    '#define VMC_ASSERT_ERRNO(expected_errno, cmd)    \\',
    '\t({                                        \\',
    '\t\tASSERT_EQ(-1, cmd);               \\',
    '\t\tASSERT_EQ(expected_errno, errno); \\',
    '\t})',
    '',
    `FIXTURE(${meta.fixture})`,
    '{',
    ...(fields.length ? fields.map((f) => `\tuint64_t ${f};`) : ['\tint unused;']),
    '};',
    '',
    `FIXTURE_SETUP(${meta.fixture})`,
    '{',
    '\tASSERT_EQ(0, vmc_pipes());',
    '\tASSERT_EQ(0, vmc_spawn(0));',
    ...exp.fixture.map(op),
    '}',
    '',
    `FIXTURE_TEARDOWN(${meta.fixture})`,
    '{',
    '\tvmc_exit_all();',
    '}',
    '',
    `TEST_F(${meta.fixture}, ${meta.test})`,
    '{',
    ...body,
    '}',
    '',
    'int main(int argc, char **argv)',
    '{',
    '\tvmc_actor_main(argc, argv);',
    '\treturn test_harness_run(argc, argv);',
    '}',
    '',
  ].join('\n');
}
