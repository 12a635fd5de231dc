// The qemu target: the test kernel under TCG with the shim as PID 1 on port 1.
import { existsSync, readFileSync } from 'node:fs';
import { anyCachedKernel, buildOfImage, cachedKernel, type KernelBuild } from '../kernel/build.ts';
import { mdevModuleIfAny } from '../mdev/build.ts';
import { baseEntries, buildInitramfs, INIT_PROLOGUE } from '../qemu/initramfs.ts';
import { Vm } from '../qemu/vm.ts';
import { ensureShim } from '../shim/build.ts';
import type { Transport } from './session.ts';

export interface QemuTargetOptions {
  kind: 'qemu';
  /** a bzImage to boot instead of the cached build (e.g. a patched kernel); default $VFIO_MC_KERNEL */
  kernel?: string;
  /**
   * device paths, mdev:<uuid> and pci:<bdf> entries the shim may touch (default /dev/iommu,
   * /dev/vfio/vfio); a pci:<bdf> device is bound to vfio-pci by /init
   */
  allow?: string[];
  /** virtio-serial ports, i.e. at most ports-1 actors alive at once (default 12) */
  ports?: number;
  memoryMiB?: number;
  cpus?: number;
  /** a call with no answer after this long is reported as blocked (default 30 s) */
  callTimeoutMs?: number;
  /** boot-to-ready limit (default 60 s) */
  bootTimeoutMs?: number;
  /** copy each console line here, e.g. (l) => process.stderr.write(`${l}\n`) */
  onConsole?: (line: string) => void;
}

const ALLOW_ENTRY =
  /^(\/dev\/[A-Za-z0-9._/-]+|mdev:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|pci:[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/;

export function checkAllow(allow: string[]): string {
  for (const a of allow) {
    if (!ALLOW_ENTRY.test(a) || a.includes('..')) {
      throw new Error(
        `allow-list entry ${JSON.stringify(a)} is neither a /dev path, mdev:<uuid> nor pci:<DDDD:BB:DD.F>`,
      );
    }
  }
  return allow.join(',');
}

/**
 * /init binds each PCI device the allow-list names to vfio-pci (driver_override, then
 * drivers_probe: drivers/pci/pci-driver.c); devices it does not name are left alone.
 */
export function bindLines(allow: string[]): string {
  return allow
    .filter((a) => a.startsWith('pci:'))
    .map((a) => a.slice(4))
    .map(
      (bdf) =>
        `echo vfio-pci > /sys/bus/pci/devices/${bdf}/driver_override && echo ${bdf} > /sys/bus/pci/drivers_probe || echo "vfio-mc: cannot bind ${bdf} to vfio-pci"
`,
    )
    .join('');
}

/** The pinning test mdev (conformance/mdev/), loaded before the shim starts. */
export const MDEV_MODULE_PATH = '/lib/vfio-mc-pin.ko';

function shimInit(allow: string[]): string {
  return `${INIT_PROLOGUE}
[ -f ${MDEV_MODULE_PATH} ] && { insmod ${MDEV_MODULE_PATH} || echo "vfio-mc: insmod ${MDEV_MODULE_PATH} failed"; }
${bindLines(allow)}echo "vfio-mc: init done, starting the shim supervisor"
exec /bin/vfio-mc-shim --port 1 --allow '${allow.join(',')}'
`;
}

/**
 * The bzImage to boot (the given one, $VFIO_MC_KERNEL, or the cached build of the current
 * fragment) and a cached build whose uapi headers the shim is compiled against.
 */
export function resolveKernel(kernel: string | undefined): { bzImage: string; build: KernelBuild } {
  const given = kernel ?? (process.env.VFIO_MC_KERNEL || undefined);
  if (given !== undefined && !existsSync(given)) throw new Error(`kernel image ${given} does not exist`);
  const build =
    given === undefined ? cachedKernel() : (buildOfImage(given) ?? cachedKernel() ?? anyCachedKernel());
  if (!build) {
    throw new Error(
      'no test kernel in the cache ($VFIO_MC_CACHE, default ~/.cache/vfio-mc): run `npm run kernel:build` first ' +
        '(the shim is built against its uapi headers, also for a kernel image of your own)',
    );
  }
  return { bzImage: given ?? build.bzImage, build };
}

export async function startQemuTransport(opts: QemuTargetOptions): Promise<Transport> {
  const allowed = opts.allow ?? ['/dev/iommu', '/dev/vfio/vfio'];
  checkAllow(allowed);
  const ports = opts.ports ?? 12;
  if (!Number.isInteger(ports) || ports < 2 || ports > 31)
    throw new Error(`ports must be 2..31, got ${ports}`);
  const { bzImage, build } = resolveKernel(opts.kernel);
  const shim = ensureShim(build);
  const module = mdevModuleIfAny(build);
  const initrd = buildInitramfs([
    ...baseEntries(shimInit(allowed)),
    { kind: 'file', path: 'bin/vfio-mc-shim', data: readFileSync(shim), mode: 0o755 },
    { kind: 'dir', path: 'lib' },
    ...(module
      ? [{ kind: 'file' as const, path: MDEV_MODULE_PATH.slice(1), data: readFileSync(module) }]
      : []),
  ]);
  const vm = await Vm.start({
    kernel: bzImage,
    initrd,
    ports,
    memoryMiB: opts.memoryMiB,
    cpus: opts.cpus,
    onConsole: opts.onConsole,
  });
  // A panic reboots, and -no-reboot turns that into a QEMU exit; the log names the reason.
  const died = vm.exited.then((exit) => {
    const panic = vm.log.lines.find((l) => l.includes('Kernel panic'));
    return (
      panic ?? `qemu exited (${exit.code ?? exit.signal})${exit.stderr ? `: ${exit.stderr.trim()}` : ''}`
    );
  });
  return {
    log: vm.log,
    ports,
    channel: (p) => vm.channel(p),
    died,
    stop: async () => {
      await vm.stop();
    },
  };
}
