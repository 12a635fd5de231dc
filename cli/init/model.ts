/**
 * Seed 002 in miniature: the VMM maps and unmaps a DMA range; an mdev driver
 * may pin it and keeps its own idea of what is mapped. The kernel tells the
 * driver about an unmap only when the driver pinned something, so a driver
 * that keeps per-range bookkeeping without pinning goes stale.
 *
 * Run it:  vfio-mc explore model.ts                       (a violation)
 *          vfio-mc explore model.ts --variant notify-always   (holds)
 */
import { assign, setup } from 'xstate';
import { defineModel, sometimes } from 'vfio-mc';

interface Ctx {
  mapped: boolean;
  pinned: boolean;
  driverSeesMapped: boolean;
  ret: { vmm: string | null };
}
type Ev =
  { type: 'VmmMapDma' } | { type: 'VmmUnmapDma' } | { type: 'MdevPinPages' } | { type: 'MdevUnpinPages' };

function buildMachine(notifyAlways: boolean) {
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'mini-notify',
    type: 'parallel',
    context: { mapped: false, pinned: false, driverSeesMapped: false, ret: { vmm: null } },
    states: {
      vmm: {
        on: {
          VmmMapDma: {
            actions: assign(({ context }) =>
              context.mapped
                ? { ret: { vmm: 'EEXIST' } }
                : { mapped: true, driverSeesMapped: true, ret: { vmm: '0' } },
            ),
          },
          VmmUnmapDma: {
            guard: ({ context }) => context.mapped,
            actions: assign(({ context }) => ({
              mapped: false,
              pinned: false, // the driver unpins when it is notified
              driverSeesMapped: context.driverSeesMapped && !(notifyAlways || context.pinned),
              ret: { vmm: '0' },
            })),
          },
        },
      },
      mdev: {
        on: {
          MdevPinPages: {
            guard: ({ context }) => context.mapped && !context.pinned,
            actions: assign({ pinned: true }),
          },
          MdevUnpinPages: { guard: ({ context }) => context.pinned, actions: assign({ pinned: false }) },
        },
      },
    },
  });
}

export default defineModel<Ctx, Ev>({
  id: 'mini-notify',
  machine: buildMachine(false),
  events: () => [
    { type: 'VmmMapDma' },
    { type: 'VmmUnmapDma' },
    { type: 'MdevPinPages' },
    { type: 'MdevUnpinPages' },
  ],
  invariants: {
    /** A driver never believes a range is mapped after the container unmapped it. */
    driverViewConsistent: (s) => !(s.context.driverSeesMapped && !s.context.mapped),
  },
  properties: {
    /** A witness that the driver can pin at all: without it, a guard typo could make every invariant hold. */
    driverCanPin: sometimes((s) => s.context.pinned),
  },
  calls: ['VmmMapDma', 'VmmUnmapDma'],
  // How each event reads in the thread: the ioctl, or the driver's kernel call.
  label: (e) =>
    ({
      VmmMapDma: 'ioctl(container, VFIO_IOMMU_MAP_DMA, dma0)',
      VmmUnmapDma: 'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0)',
      MdevPinPages: 'mdev: vfio_pin_pages(dma0)',
      MdevUnpinPages: 'mdev: vfio_unpin_pages(dma0)',
    })[e.type],
  variants: {
    'notify-if-pinned': { expect: { violated: ['driverViewConsistent'] } },
    'notify-always': { machine: buildMachine(true) },
  },
});
