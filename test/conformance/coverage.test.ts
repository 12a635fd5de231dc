/**
 * The coverage run's pieces without a VM: gcda counters and gcov on a program compiled here with
 * gcc's -fprofile-arcs, the shim's snapshot format through the mirror, the tallies, the
 * citation extraction and check (with a model built to slip past it), and the staleness test
 * of the committed summary (conformance/coverage/summary.json).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { citationsIn, transitionCitations } from '../../conformance/coverage/citations.ts';
import { counterSlots, fromBuffer, readCounters, withCounters } from '../../conformance/coverage/gcda.ts';
import { gcovHits, reachedFunctions, sourceFunctions } from '../../conformance/coverage/gcov.ts';
import {
  adaptersDigest,
  coveragePlans,
  loadPlans,
  planInputs,
  planName,
  pathsDigest,
} from '../../conformance/coverage/replays.ts';
import { fileRows, formatFileTable, functionGaps } from '../../conformance/coverage/report.ts';
import { GcovMirror, parseSnapshotText } from '../../conformance/coverage/snapshots.ts';
import { checkProtocol } from '../../conformance/coverage/transitions.ts';

const PROGRAM = `int g;
static inline __attribute__((always_inline)) int twice(int x)
{
\tif (x > 5)
\t\tg += 3;
\treturn x * 2;
}
int branchy(int x)
{
\tif (x > 3)
\t\tg++;
\telse
\t\tg--;
\treturn g;
}
int never(int x)
{
\treturn x + 1;
}
int main(int argc, char **argv)
{
\tfor (int i = 0; i < argc * 2; i++)
\t\tbranchy(i);
\treturn twice(argc) == 1000;
}
`;

let dir: string;
const gcda = () => fromBuffer(readFileSync(join(dir, 'prog.gcda')));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vfio-mc-cov-test-'));
  writeFileSync(join(dir, 'prog.c'), PROGRAM);
  execFileSync('gcc', ['-O2', '-fprofile-arcs', '-ftest-coverage', '-c', 'prog.c', '-o', 'prog.o'], {
    cwd: dir,
  });
  execFileSync('gcc', ['-fprofile-arcs', 'prog.o', '-o', 'prog'], { cwd: dir });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the shim sends for a file: its words that differ from the previous image. */
function snapshotText(path: string, before: Uint32Array | undefined, now: Uint32Array): string {
  const words = [...now].flatMap((v, i) =>
    v !== (before?.[i] ?? 0) ? [`${i.toString(16)}:${v.toString(16)},`] : [],
  );
  return `${path}|${now.length * 4}|${words.join('')};`;
}

describe('gcda counters and gcov', () => {
  it('reads the counters of a run, and gcov reads a file written with other values', () => {
    rmSync(join(dir, 'prog.gcda'), { force: true });
    execFileSync(join(dir, 'prog'), [], { cwd: dir }); // argc 1: branchy(0), branchy(1)
    const words = gcda();
    const slots = counterSlots(words);
    const one = readCounters(words, slots);
    expect(one.some((v) => v > 0)).toBe(true);
    const hits = gcovHits(dir, dir, [{ object: 'prog', words, slots, values: one }]).get('prog.c')!;
    const fns = sourceFunctions(dir, 'prog.c');
    expect(fns.map((f) => f.name)).toEqual(['twice', 'branchy', 'never', 'main']);
    // twice is inlined into main: no gcov function of its own, its line has a count
    expect(reachedFunctions(fns, hits)).toEqual(['twice', 'branchy', 'main']);
    expect(hits.get(11)?.count).toBe(0); // g++ never runs with x <= 1
    const doubled = Float64Array.from(one, (v) => v * 2);
    const twice = gcovHits(dir, dir, [{ object: 'prog', words, slots, values: doubled }]).get('prog.c')!;
    expect(twice.get(10)?.count).toBe(2 * (hits.get(10)?.count ?? 0));
    const none = gcovHits(dir, dir, [
      { object: 'prog', words, slots, values: new Float64Array(slots.length) },
    ]);
    expect(reachedFunctions(fns, none.get('prog.c'))).toEqual([]);
  });

  it('refuses what is not a gcda file, and values it cannot write', () => {
    expect(() => counterSlots(new Uint32Array([1, 2, 3, 4]), 'x.gcda')).toThrow(/x.gcda: not a gcda file/);
    const words = gcda();
    const slots = counterSlots(words);
    expect(() => withCounters(words, slots, new Float64Array(1))).toThrow(/counter values for a file/);
    expect(() =>
      withCounters(
        words,
        slots,
        Float64Array.from(slots, () => -1),
      ),
    ).toThrow(/would be -1/);
  });

  it('the mirror turns the shim’s word diffs into counter increments, and a restart into a fresh start', () => {
    rmSync(join(dir, 'prog.gcda'), { force: true });
    execFileSync(join(dir, 'prog'), [], { cwd: dir });
    const first = gcda();
    execFileSync(join(dir, 'prog'), ['a', 'b'], { cwd: dir }); // gcc adds to the file
    const second = gcda();
    const slots = counterSlots(first);
    const m = new GcovMirror('/build');
    const a = m.apply(snapshotText('build/prog.gcda', undefined, first));
    expect([...(a.get('prog') ?? new Map()).values()].reduce((x, y) => x + y, 0)).toBe(
      readCounters(first, slots).reduce((x, y) => x + y, 0),
    );
    const b = m.apply(snapshotText('build/prog.gcda', first, second)).get('prog')!;
    const want = readCounters(second, slots).map((v, k) => v - readCounters(first, slots)[k]);
    for (let k = 0; k < slots.length; k++) expect(b.get(k) ?? 0).toBe(want[k]);
    expect(m.apply('').size).toBe(0); // nothing changed
    m.zero(); // a fresh VM: its shim sends the non-zero words again
    const c = m.apply(snapshotText('build/prog.gcda', undefined, first)).get('prog')!;
    expect([...c.values()].reduce((x, y) => x + y, 0)).toBe(
      readCounters(first, slots).reduce((x, y) => x + y, 0),
    );
    expect(() => m.apply('elsewhere/prog.gcda|16|0:1,;')).toThrow(/not an object of the build/);
    expect(() => parseSnapshotText('x|y|')).toThrow(/bad file entry/);
  });
});

describe('tallies', () => {
  const line = (count: number, branches: number[] = []) => ({ count, branches });
  const models = new Map([
    [
      'f.c',
      new Map([
        [1, line(1)],
        [2, line(1, [1, 0])],
        [3, line(0)],
        [5, line(0)],
      ]),
    ],
  ]);
  const selftests = new Map([
    [
      'f.c',
      new Map([
        [1, line(0)],
        [2, line(2, [1, 1])],
        [3, line(1)],
        [5, line(0)],
      ]),
    ],
  ]);
  const fns = [
    { name: 'a', start: 1, end: 2 },
    { name: 'b', start: 3, end: 4 },
    { name: 'c', start: 5, end: 6 },
  ];
  const rows = fileRows(
    ['f.c'],
    models,
    selftests,
    () => fns,
    () => [1, 2, 3, 5],
  );

  it('counts models, selftests, both and union per file and per function', () => {
    expect(rows[0].lines).toEqual({ total: 4, models: 2, selftests: 2, both: 1, union: 3 });
    expect(rows[0].branches).toEqual({ total: 2, models: 1, selftests: 2, both: 1, union: 2 });
    expect(functionGaps(rows[0])).toEqual({
      selftestsOnly: ['b'],
      modelsOnly: [],
      neither: ['c'],
      modelsOnlyLines: ['a +1/+0'],
    });
  });

  it('the table fits 100 columns', () => {
    for (const l of formatFileTable(rows, 100)) expect(l.length).toBeLessThanOrEqual(100);
  });
});

describe('citations', () => {
  const index = new Map([
    ['vfio_dma_do_unmap', ['drivers/vfio/vfio_iommu_type1.c']],
    ['iopt_unmap_iova_range', ['drivers/iommu/iommufd/io_pagetable.c']],
    ['iommufd_object_remove', ['drivers/iommu/iommufd/main.c']],
  ]);

  it('reads abbreviations, file and path forms, and bare names of profiled functions', () => {
    const c = citationsIn(
      'T1:vfio_dma_do_unmap and io_pagetable.c:iopt_unmap_iova_range, then iommufd_object_remove; not_a_kernel_fn',
      index,
    );
    expect(c.map((x) => `${x.file}:${x.fn}`).sort()).toEqual([
      'drivers/iommu/iommufd/io_pagetable.c:iopt_unmap_iova_range',
      'drivers/iommu/iommufd/main.c:iommufd_object_remove',
      'drivers/vfio/vfio_iommu_type1.c:vfio_dma_do_unmap',
    ]);
  });

  it('a transition cites what its handler and the steps it calls say, not its neighbours’ comments', async () => {
    const m = mkdtempSync(join(tmpdir(), 'vfio-mc-cit-'));
    mkdirSync(join(m, 'kernel'));
    writeFileSync(
      join(m, 'kernel', 'steps.ts'),
      '/** T1:vfio_dma_do_unmap, the whole unmap. */\nexport const unmap = (c: number) => c;\n',
    );
    writeFileSync(
      join(m, 'toy.ts'),
      [
        "import { unmap } from './kernel/steps.ts';",
        '/** main.c:iommufd_object_remove */',
        'const destroy = (c: number) => c;',
        'export const machine = { on: {',
        '  // the unmap call',
        '  VmmUnmap: [{ actions: unmap }],',
        '  VmmDestroy: [{ actions: destroy }],',
        '  VmmIdle: [], // iopt_unmap_iova_range is named here, on another event',
        '} };',
      ].join('\n'),
    );
    const t = await transitionCitations(join(m, 'toy.ts'), ['VmmUnmap', 'VmmDestroy', 'VmmIdle'], index);
    rmSync(m, { recursive: true, force: true });
    expect(t.get('VmmUnmap')?.map((c) => c.fn)).toEqual(['vfio_dma_do_unmap']);
    expect(t.get('VmmDestroy')?.map((c) => c.fn)).toEqual(['iommufd_object_remove']);
  });

  it('the check finds a citation never reached and a reached function cited for another transition', () => {
    // A model built to slip past: its unmap cites the unmap path but the replay never got there
    // (it stopped at the ioctl's argument check), and its destroy reaches the unmap path uncited.
    const T1 = 'drivers/vfio/vfio_iommu_type1.c';
    const cite = (fn: string) => ({ file: T1, fn });
    const check = checkProtocol(
      'toy',
      [cite('vfio_iommu_type1_ioctl')],
      new Map([
        ['VmmUnmap', [cite('vfio_dma_do_unmap')]],
        ['VmmDestroy', [cite('vfio_iommu_type1_release')]],
        ['VmmNever', [cite('vfio_iommu_type1_detach_group')]],
      ]),
      new Map([
        ['VmmUnmap', { steps: 2, reached: new Set([`${T1}:vfio_iommu_type1_ioctl`]) }],
        [
          'VmmDestroy',
          {
            steps: 1,
            reached: new Set([`${T1}:vfio_iommu_type1_release`, `${T1}:vfio_dma_do_unmap`, `${T1}:helper`]),
          },
        ],
      ]),
      () => true,
    );
    const by = new Map(check.transitions.map((t) => [t.event, t]));
    expect(by.get('VmmUnmap')?.citedNotReached).toEqual([`${T1}:vfio_dma_do_unmap`]);
    expect(by.get('VmmUnmap')?.reachedCitedElsewhere).toEqual([`${T1}:vfio_iommu_type1_ioctl`]);
    expect(by.get('VmmDestroy')?.reachedCitedElsewhere).toEqual([`${T1}:vfio_dma_do_unmap`]);
    expect(by.get('VmmDestroy')?.uncited).toEqual([`${T1}:helper`]);
    expect(by.get('VmmNever')?.citedNotReached).toEqual([]); // never replayed: nothing to say
    expect(check.specNotReached).toEqual([]);
  });
});

describe('the committed coverage summary', () => {
  const file = join(import.meta.dirname, '..', '..', 'conformance', 'coverage', 'summary.json');

  it('was made from the paths the models give now (else: npm run coverage)', async () => {
    expect(existsSync(file), `${file} is missing: npm run coverage writes it`).toBe(true);
    const summary = JSON.parse(readFileSync(file, 'utf8')) as {
      plans: { plan: string; inputs: string; paths: string }[];
      adapters: string;
    };
    expect(adaptersDigest(), 'an adapter changed since the coverage run: npm run coverage').toBe(
      summary.adapters,
    );
    const plans = coveragePlans();
    expect(summary.plans.map((p) => p.plan)).toEqual(plans.map(planName));
    const stale: string[] = [];
    for (const [i, plan] of plans.entries()) {
      if (planInputs(plan) === summary.plans[i].inputs) continue;
      // a machine or the path generator changed: the paths decide
      const [loaded] = await loadPlans([plan]);
      if (pathsDigest(loaded.file) !== summary.plans[i].paths) stale.push(planName(plan));
    }
    expect(stale, `coverage summary is stale for ${stale.join(', ')}: run npm run coverage`).toEqual([]);
  }, 300_000);
});
