/**
 * The benchmark model: k DMA regions in a type1 container, with the live-update
 * flavour of the real protocols. The VMM maps, unmaps, invalidates a region's
 * vaddr (UNMAP_DMA with VADDR) and re-supplies it (MAP_DMA with VADDR); an mdev
 * driver pins and unpins pages (at most `maxPins` per region). Rules as in
 * kernel 7.3 (vfio_iommu_type1.c): no pin while the vaddr is invalid, and an
 * unmap of a pinned region waits for the driver (abstracted: refused).
 *
 * Each region is in one of 1 + 2 * (maxPins + 1) states (unmapped, or mapped
 * with a valid or invalid vaddr and 0..maxPins pins), independently, so the
 * model has (3 + 2 * maxPins)^k states: 7^6 = 117,649 at the default size.
 */
import { assign, setup } from 'xstate';
import { defineModel, type Params } from '../model.ts';

interface Region {
  readonly mapped: boolean;
  readonly vaddrValid: boolean;
  readonly pins: number;
}
interface Ctx {
  readonly regions: readonly Region[];
}
type Ev =
  | { type: 'VmmMapDma'; r: number }
  | { type: 'VmmUnmapDma'; r: number }
  | { type: 'VmmInvalidateVaddr'; r: number }
  | { type: 'VmmUpdateVaddr'; r: number }
  | { type: 'MdevPinPages'; r: number }
  | { type: 'MdevUnpinPages'; r: number };

type Args = { context: Ctx; event: Ev & { r: number } };

const UNMAPPED: Region = { mapped: false, vaddrValid: false, pins: 0 };

const update = (f: (g: Region) => Region) =>
  assign({
    regions: ({ context, event }: Args) => context.regions.map((g, i) => (i === event.r ? f(g) : g)),
  });

const region = ({ context, event }: Args) => context.regions[event.r];
const when = (p: (g: Region) => boolean) => (a: Args) => p(region(a));

function body(k: number, maxPins: number) {
  const machine = setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'dma-regions',
    type: 'parallel',
    context: { regions: Array.from({ length: k }, () => UNMAPPED) },
    states: {
      vmm: {
        initial: 'running',
        states: {
          running: {
            on: {
              VmmMapDma: {
                guard: when((g) => !g.mapped),
                actions: update(() => ({ mapped: true, vaddrValid: true, pins: 0 })),
              },
              VmmUnmapDma: { guard: when((g) => g.mapped && g.pins === 0), actions: update(() => UNMAPPED) },
              VmmInvalidateVaddr: {
                guard: when((g) => g.mapped && g.vaddrValid),
                actions: update((g) => ({ ...g, vaddrValid: false })),
              },
              VmmUpdateVaddr: {
                guard: when((g) => g.mapped && !g.vaddrValid),
                actions: update((g) => ({ ...g, vaddrValid: true })),
              },
            },
          },
        },
      },
      mdev: {
        initial: 'running',
        states: {
          running: {
            on: {
              MdevPinPages: {
                guard: when((g) => g.mapped && g.vaddrValid && g.pins < maxPins),
                actions: update((g) => ({ ...g, pins: g.pins + 1 })),
              },
              MdevUnpinPages: {
                guard: when((g) => g.pins > 0),
                actions: update((g) => ({ ...g, pins: g.pins - 1 })),
              },
            },
          },
        },
      },
    },
  } as any);
  const types = [
    'VmmMapDma',
    'VmmUnmapDma',
    'VmmInvalidateVaddr',
    'VmmUpdateVaddr',
    'MdevPinPages',
    'MdevUnpinPages',
  ] as const;
  const events = types.flatMap((type) => Array.from({ length: k }, (_, r) => ({ type, r }) as Ev));
  return {
    machine,
    events: () => events,
    // Regions are interchangeable: region i becomes region perm[i].
    symmetry: {
      sets: { region: k },
      permute: (c: Ctx, perm: Readonly<Record<string, readonly number[]>>) => {
        const regions = new Array<Region>(k);
        c.regions.forEach((g, i) => {
          regions[perm.region[i]] = g;
        });
        return { regions };
      },
      // A region's own record: the representative is sought among the orders that sort them.
      key: (c: Ctx, _set: string, i: number) => {
        const g = c.regions[i];
        return (g.mapped ? 4 : 0) + (g.vaddrValid ? 2 : 0) + g.pins * 8;
      },
    },
    invariants: {
      noPinWhileVaddrInvalid: (s: { context: Ctx }) =>
        s.context.regions.every((g) => g.vaddrValid || g.pins === 0 || g.mapped),
    },
  };
}

export default defineModel<Ctx, Ev>({
  id: 'dma-regions',
  description: 'benchmark: k DMA regions mapped, unmapped, invalidated and pinned (7^k states at 2 pins)',
  params: {
    regions: { default: 6, min: 1, max: 12, description: 'DMA regions in the container' },
    pins: { default: 2, min: 1, max: 8, description: 'pins the mdev may hold on a region' },
  },
  build: (p: Params) => body(p.regions, p.pins),
});

export const expectedStates = (k: number, maxPins: number) => (3 + 2 * maxPins) ** k;
