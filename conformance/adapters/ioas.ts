/**
 * machines/ioas.ts on a real kernel: /dev/iommu with the selftest mock
 * (CONFIG_IOMMUFD_TEST). The fixture follows the variant's design
 * (machines/ioas.ts ioasDesign): CAP_IPC_LOCK dropped unless the design keeps
 * it, IOMMU_OPTION_RLIMIT_MODE, RLIMIT_MEMLOCK in pages, IOAS 1 with a mock
 * domain (MOCK_DOMAIN) when the design has one, a memfd for MAP_FILE and a
 * shared buffer for user-VA MAP (one page a slot, slot s at IOVA 1 MiB + s
 * pages, FIXED_IOVA), the forked child, and the mock access
 * (IOMMU_TEST_OP_CREATE_ACCESS) on IOAS 1. An IOAS allocated during the path
 * gets no mock domain (the model's `domain` flag is global; on the kernel an
 * IOAS has a domain only once something attaches one).
 */
import { match } from 'ts-pattern';
import { ioasDesign, VARIANT_DESIGNS } from '../../machines/ioas.ts';
import {
  type Adapter,
  call,
  iommufdVm,
  type Mapping,
  observeVm,
  PAGE,
  type PathRun,
  sameObservation,
  Unreplayable,
} from './adapter.ts';
import { IOAS_EVENT_TYPES } from '../../machines/ioas.ts';

/** The model's event types: the match below is exhaustive over them, so a new one without a mapping fails to compile. */
export const IOAS_EVENTS = IOAS_EVENT_TYPES;
export type IoasEvent = (typeof IOAS_EVENTS)[number];

// Inside the mock domain's aperture (selftest.c MOCK_APERTURE_START = 1 << 24).
const IOVA = 0x1000000;
const SLOTS = 4;
/** An id no object has: IOMMU_DESTROY / DESTROY_ACCESS_PAGES answer ENOENT for it. */
const NO_ID = 0x7ffffff0;
const internal: Mapping = { kind: 'internal' };
const PIN_COUNTED = new Set([
  'VmmIoasChangeProcess',
  'ChildIoasChangeProcess',
  'VmmIoasMap',
  'VmmIoasMapFile',
  'VmmIoasCopy',
]);

type Ev = {
  readonly type: string;
  readonly ioas?: number;
  readonly slot?: number;
  readonly srcIoas?: number;
  readonly srcSlot?: number;
};

const iova = (slot: number | undefined) => IOVA + (slot ?? 0) * PAGE;
const ioasId = (r: PathRun, n: number | undefined) => r.sym.get(`ioas${n ?? 1}`) ?? NO_ID;
const errnoCall = (run: (r: PathRun) => ReturnType<ReturnType<typeof call>>): Mapping => ({
  kind: 'call',
  compare: 'errno',
  run,
});

/** Guest memory the new image maps after exec (the old buffer died with the old mm). */
async function mapBuffer(r: PathRun) {
  r.sym.set(
    'buf',
    r.num(await r.must('vmm', 'mmap', { length: SLOTS * PAGE, flags: 'SHARED|ANONYMOUS' }), 'addr'),
  );
}

export function mapIoasEvent(e: Ev): Mapping {
  return match(e.type as IoasEvent)
    .with('VmmIoasAlloc', () =>
      errnoCall(
        call(
          'vmm',
          'ioas_alloc',
          (r) => ({ fd: r.get('fd') }),
          // IOAS_ALLOC in the model takes the lowest free id: so does this symbol table.
          (r, o) => {
            let n = 1;
            while (r.sym.has(`ioas${n}`)) n++;
            r.sym.set(`ioas${n}`, Number(o.out.ioas_id));
          },
        ),
      ),
    )
    .with('VmmIoasDestroy', () =>
      errnoCall(
        call(
          'vmm',
          'destroy',
          (r) => ({ fd: r.get('fd'), id: ioasId(r, e.ioas) }),
          (r) => r.sym.delete(`ioas${e.ioas}`),
        ),
      ),
    )
    .with('VmmIoasMap', () =>
      errnoCall(
        call('vmm', 'ioas_map', (r) => ({
          fd: r.get('fd'),
          ioas: ioasId(r, e.ioas),
          vaddr: r.get('buf') + (e.slot ?? 0) * PAGE,
          length: PAGE,
          iova: iova(e.slot),
          flags: 'FIXED_IOVA|READABLE|WRITEABLE',
        })),
      ),
    )
    .with('VmmIoasMapFile', () =>
      errnoCall(
        call('vmm', 'ioas_map_file', (r) => ({
          fd: r.get('fd'),
          ioas: ioasId(r, e.ioas),
          mfd: r.get('memfd'),
          start: (e.slot ?? 0) * PAGE,
          length: PAGE,
          iova: iova(e.slot),
          flags: 'FIXED_IOVA|READABLE|WRITEABLE',
        })),
      ),
    )
    .with('VmmIoasCopy', () =>
      errnoCall(
        call('vmm', 'ioas_copy', (r) => ({
          fd: r.get('fd'),
          dst_ioas: ioasId(r, e.ioas),
          src_ioas: ioasId(r, e.srcIoas),
          src_iova: iova(e.srcSlot),
          dst_iova: iova(e.slot),
          length: PAGE,
          flags: 'FIXED_IOVA|READABLE|WRITEABLE',
        })),
      ),
    )
    .with('VmmIoasUnmap', () =>
      errnoCall(
        call('vmm', 'ioas_unmap', (r) => ({
          fd: r.get('fd'),
          ioas: ioasId(r, e.ioas),
          iova: iova(e.slot),
          length: PAGE,
        })),
      ),
    )
    .with('VmmIoasChangeProcess', () =>
      errnoCall(call('vmm', 'ioas_change_process', (r) => ({ fd: r.get('fd') }))),
    )
    .with('ChildIoasChangeProcess', () =>
      errnoCall(call('child', 'ioas_change_process', (r) => ({ fd: r.get('fd') }))),
    )
    .with('VmmExec', () => ({
      kind: 'call' as const,
      compare: 'success' as const,
      // exec keeps the iommufd, the memfd and the access; root's exec gives CAP_IPC_LOCK back.
      run: async (r: PathRun) => {
        const keep = ['fd', 'memfd', 'access'].flatMap((k) => (r.sym.has(k) ? [r.get(k)] : []));
        const o = await r.call('vmm', 'exec', { keep: keep.join(',') });
        if (o.status !== 'done' || o.errno !== '0') return o;
        if (!r.sym.has('cap')) await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
        await mapBuffer(r);
        return o;
      },
    }))
    .with('ChildExit', () => ({
      kind: 'call' as const,
      compare: 'success' as const,
      run: call('child', 'exit', () => ({ code: 0 })),
    }))
    .with('AccessPin', () =>
      errnoCall(
        call(
          'vmm',
          'access_pages',
          (r) => ({ fd: r.get('fd'), access_fd: r.get('access'), iova: iova(e.slot), length: PAGE }),
          (r, o) => r.sym.set(`pin${e.slot}`, Number(o.out.access_pages_id)),
        ),
      ),
    )
    .with('AccessUnpin', () =>
      errnoCall(
        call(
          'vmm',
          'destroy_access_pages',
          (r) => ({ fd: r.get('fd'), access_fd: r.get('access'), id: r.sym.get(`pin${e.slot}`) ?? NO_ID }),
          (r) => r.sym.delete(`pin${e.slot}`),
        ),
      ),
    )
    .with('AccessDestroy', () =>
      errnoCall(
        call(
          'vmm',
          'close',
          (r) => ({ fd: r.get('access') }),
          (r) => r.sym.delete('access'),
        ),
      ),
    )
    .with(
      'VmmIoasFinalize',
      'VmmMapInsert',
      'VmmMapFill',
      'VmmUnmapScan',
      'VmmUnmapNotify',
      'VmmUnmapUnfill',
      'VmmCpTakeCreation',
      'VmmCpTakeIoas',
      'VmmCpApply',
      'ChildCpTakeCreation',
      'ChildCpTakeIoas',
      'ChildCpApply',
      () => internal,
    )
    .exhaustive();
}

/**
 * The model's `domain` is global (every IOAS pins what it maps); on the kernel only the
 * fixture's IOASes have a mock domain. Pages mapped only in an IOAS allocated during the
 * path are pinned in the model and not on the kernel.
 */
function pinnedByLaterIoas(c: any, variant: string): boolean {
  const d = ioasDesign(variant as keyof typeof VARIANT_DESIGNS);
  if (!d.domain) return false;
  const withDomain = new Set(d.ioas);
  const areas: { ioas: number; pages: number }[] = c.k.areas;
  return areas.some(
    (a) => !withDomain.has(a.ioas) && !areas.some((b) => withDomain.has(b.ioas) && b.pages === a.pages),
  );
}

/**
 * The fixture (RLIMIT_MEMLOCK, the buffer) is the variant at the model's default
 * size, areas=2: a slot the default design never maps comes from a larger one.
 */
function beyondFixture(e: Ev, variant: string): Mapping | undefined {
  const d = ioasDesign(variant as keyof typeof VARIANT_DESIGNS);
  const slots = new Set([...d.maps.map((m) => m.slot), ...d.copies.map((c) => c.dst[1])]);
  if (e.slot === undefined || slots.has(e.slot)) return undefined;
  return errnoCall(async () => {
    throw new Unreplayable(`slot${e.slot}: the fixture is ioas/${variant} at its default size (areas=2)`);
  });
}

/** The mock access honours the unmap callback: a non-compliant access is not reachable with it. */
const SUPPORTED = Object.keys(VARIANT_DESIGNS).filter((v) => v !== 'access-unmap-noncompliant');

export const ioasAdapter: Adapter = {
  model: 'ioas',
  variants: SUPPORTED,
  eventTypes: IOAS_EVENTS,
  uuidsPerPath: 0,
  allow: () => ['/dev/iommu'],
  async setup(r, variant) {
    if (!SUPPORTED.includes(variant))
      throw new Unreplayable(`ioas/${variant}: the selftest mock access always honours the unmap callback`);
    const d = ioasDesign(variant as keyof typeof VARIANT_DESIGNS);
    const fd = r.num(await r.must('vmm', 'open', { path: '/dev/iommu' }), 'fd');
    r.sym.set('fd', fd);
    if (d.cap) r.sym.set('cap', 1);
    else await r.must('vmm', 'drop_cap', { cap: 'IPC_LOCK' });
    if (d.ctxMode === 'mm')
      await r.must('vmm', 'option', { fd, option_id: 'RLIMIT_MODE', op: 'SET', val64: 1 });
    await r.must('vmm', 'setrlimit', { resource: 'MEMLOCK', cur: d.rlimit * PAGE });
    for (const n of d.ioas) {
      const id = r.num(await r.must('vmm', 'ioas_alloc', { fd }), 'ioas_id');
      r.sym.set(`ioas${n}`, id);
      if (d.domain) await r.must('vmm', 'mock_domain', { fd, ioas: id });
    }
    r.sym.set(
      'memfd',
      r.num(await r.must('vmm', 'memfd_create', { name: 'guest', size: SLOTS * PAGE }), 'fd'),
    );
    await mapBuffer(r);
    if (d.access !== 'none') {
      const a = await r.must('vmm', 'create_access', { fd, ioas: r.get('ioas1') });
      r.sym.set('access', r.num(a, 'access_fd'));
    }
    if (d.child) await r.must('vmm', 'fork', { child: r.actorName('child') });
  },
  /**
   * The model's `domain` is global (every IOAS pins what it maps); on the kernel only the
   * fixture's IOASes have a mock domain. Pages mapped only in an IOAS allocated during the
   * path are pinned in the model and not on the kernel, so a call whose result depends on
   * the pin counts (CHANGE_PROCESS charging the new owner, a map charging RLIMIT_MEMLOCK)
   * cannot be compared from such a state.
   */
  unfit(c, e, variant) {
    // A path chosen at another `--set areas=N` has RLIMIT_MEMLOCK scaled with its pages (sizedDesign).
    const rlimit = ioasDesign(variant as keyof typeof VARIANT_DESIGNS).rlimit;
    if (c.k.procs.vmm.rlimit !== rlimit)
      return `the fixture is ioas/${variant} at its default size (areas=2, RLIMIT_MEMLOCK ${rlimit} pages)`;
    if (!PIN_COUNTED.has(e.type) || !pinnedByLaterIoas(c, variant)) return null;
    return 'pages pinned only by the domain of an IOAS allocated during the path (the kernel IOAS has none)';
  },
  // VmPin/VmLck of each process after every call: the model's mms pinned_vm and locked_vm
  // (not comparable while the model pins pages through a domain the kernel's IOAS lacks).
  observe: (r) => observeVm(r, ['vmm', 'child']),
  predict: (c, o) => iommufdVm(c, o),
  fits: (c, o, variant) => pinnedByLaterIoas(c, variant) || sameObservation(iommufdVm(c, o), o),
  map: (e, _actor, variant) => beyondFixture(e as Ev, variant) ?? mapIoasEvent(e as Ev),
  async teardown(r) {
    await r.exitAll();
  },
};
