// Boots the test kernel in qemu-system-x86_64 under TCG (no /dev/kvm here) and exposes the
// serial console as a KernelLog plus N virtio-serial ports ("vfio-mc.<N>") as line channels.
//
// Each port is a QEMU unix-socket chardev that this process connects to; in the guest it is
// /dev/vportXpY, found by name through /sys/class/virtio-ports (drivers/char/virtio_console.c).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTools } from '../run.ts';
import { KernelLog } from './kernel-log.ts';

export interface VmOptions {
  kernel: string;
  initrd: Buffer;
  memoryMiB?: number;
  cpus?: number;
  /** virtio-serial ports numbered 1..ports (0: none) */
  ports?: number;
  /** extra kernel command line words */
  append?: string[];
  /** copy every console line here as it arrives (e.g. process.stderr.write) */
  onConsole?: (line: string) => void;
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * A line-oriented channel over one port's socket. It may start without a socket (local target:
 * the shim connects later) and then queues what is sent until one is attached.
 */
export class LineChannel {
  private partial = '';
  private listeners: ((line: string) => void)[] = [];
  private queued: string[] = [];
  private socket: Socket | undefined;

  constructor(
    readonly port: number,
    socket?: Socket,
  ) {
    if (socket) this.replace(socket);
  }

  /** Attaches a (new) connection for this port (local target: the shim reconnects after exec). */
  replace(socket: Socket): void {
    this.socket?.destroy();
    this.partial = '';
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) for (const l of this.listeners) l(line);
    });
    socket.on('error', () => {
      /* a dead peer shows up as the target's death */
    });
    for (const line of this.queued) socket.write(line);
    this.queued = [];
  }

  onLine(listener: (line: string) => void): void {
    this.listeners.push(listener);
  }

  send(line: string): void {
    if (this.socket) this.socket.write(`${line}\n`);
    else this.queued.push(`${line}\n`);
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** Kernel command line: console on ttyS0; loglevel=5 prints KERN_WARNING and worse (WARN, lockdep). */
export const BASE_APPEND = [
  'console=ttyS0',
  'loglevel=5',
  'printk.devkmsg=on',
  'panic=-1',
  'mitigations=off',
  'tsc=reliable',
  // Under TCG on a busy host the IO-APIC timer check can see too few ticks; with interrupt
  // remapping on, check_timer() (arch/x86/kernel/apic/io_apic.c) then panics the boot.
  'no_timer_check',
];

/**
 * The VM's test PCI device for vfio-pci: QEMU's `edu` (hw/misc/edu.c), which no kernel driver
 * claims, behind QEMU's emulated VT-d (intel-iommu) so that its IOMMU group has a real IOMMU
 * domain. The type1 container adapter uses it as the model's IOMMU-backed group; /init binds
 * it to vfio-pci only when the shim's allow-list names it (`pci:<bdf>`, target/qemu.ts).
 */
export const TEST_PCI_DEVICE = '0000:00:10.0';

/**
 * A second edu, alone behind a PCIe root port, for the bar-mmap adapter's VFIO_DEVICE_RESET.
 * edu has no FLR and no PM capability, so on the root bus (TEST_PCI_DEVICE) the kernel finds
 * no reset method and vfio-pci's reset_works is false; alone on the root port's secondary bus
 * it has a secondary bus reset (drivers/pci/pci.c:pci_parent_bus_reset).
 */
export const RESETTABLE_PCI_DEVICE = '0000:01:00.0';

/**
 * A test device with a PCI power-management capability, for the bar-mmap adapter's D3 paths
 * (VCFG:vfio_pm_config_write): QEMU's nvme (hw/nvme/ctrl.c:nvme_add_pm_capability: PM_CTRL's
 * state bits writable, No_Soft_Reset set), alone behind a second root port, on bus 02 (the
 * firmware numbers the ports' buses in slot order, 1c then 1d). No kernel driver claims it (the
 * fragment has no NVMe); /init binds it to vfio-pci only when the allow-list names it.
 */
export const PM_PCI_DEVICE = '0000:02:00.0';

/**
 * q35 (VT-d needs it) with intel-iommu first (QEMU wants the IOMMU before the PCI devices it
 * translates). intremap=on gives interrupt remapping, so the group's MSIs are isolated and
 * vfio_iommu_type1_attach_group() accepts it without allow_unsafe_interrupts. Under TCG the
 * kernel-irqchip setting has no effect; split is what the same line needs under KVM.
 */
export const MACHINE_ARGS = [
  '-machine',
  'q35,kernel-irqchip=split',
  '-device',
  'intel-iommu,intremap=on',
  '-device',
  `edu,addr=${TEST_PCI_DEVICE.slice(8)}`,
  '-device',
  'pcie-root-port,id=vfio-mc-rp0,bus=pcie.0,addr=1c.0,chassis=1',
  '-device',
  'edu,bus=vfio-mc-rp0,addr=0.0',
  '-device',
  'pcie-root-port,id=vfio-mc-rp1,bus=pcie.0,addr=1d.0,chassis=2',
  '-device',
  'nvme,serial=vfio-mc-pm,bus=vfio-mc-rp1,addr=0.0',
];

async function connectWhenReady(path: string, deadline: number, isDead: () => boolean): Promise<Socket> {
  for (;;) {
    if (isDead()) throw new Error('QEMU exited before its sockets were up');
    if (existsSync(path)) {
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch {
        /* not listening yet */
      }
    }
    if (Date.now() > deadline) throw new Error(`QEMU socket ${path} did not come up`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class Vm {
  readonly log = new KernelLog();
  readonly channels = new Map<number, LineChannel>();
  readonly exited: Promise<VmExit>;
  private stderr = '';
  private dead = false;
  private readonly workDir: string;
  private readonly child: ChildProcess;
  readonly startedAt = Date.now();

  private constructor(opts: VmOptions) {
    requireTools(['qemu-system-x86_64']);
    if (!existsSync(opts.kernel)) throw new Error(`kernel image ${opts.kernel} does not exist`);
    this.workDir = mkdtempSync(join(tmpdir(), 'vfio-mc-vm-'));
    const initrd = join(this.workDir, 'initrd.cpio.gz');
    writeFileSync(initrd, opts.initrd);
    const args = [
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-no-reboot',
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      String(opts.cpus ?? 2),
      '-m',
      String(opts.memoryMiB ?? 2048),
      '-kernel',
      opts.kernel,
      '-initrd',
      initrd,
      '-append',
      [...BASE_APPEND, ...(opts.append ?? [])].join(' '),
      '-serial',
      'stdio',
      '-monitor',
      'none',
      ...MACHINE_ARGS,
    ];
    const ports = opts.ports ?? 0;
    if (ports > 0) args.push('-device', 'virtio-serial-pci,id=vser0,max_ports=32');
    for (let p = 1; p <= ports; p++) {
      args.push(
        '-chardev',
        `socket,id=port${p},path=${join(this.workDir, `port${p}.sock`)},server=on,wait=off`,
        '-device',
        `virtserialport,bus=vser0.0,nr=${p},chardev=port${p},name=vfio-mc.${p}`,
      );
    }
    this.child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => {
      const before = this.log.length;
      this.log.push(chunk);
      if (opts.onConsole) for (const line of this.log.slice(before)) opts.onConsole(line);
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.dead = true;
        this.log.flush();
        resolve({ code, signal, stderr: this.stderr });
      });
      this.child.on('error', (e) => {
        this.dead = true;
        resolve({ code: null, signal: null, stderr: `${this.stderr}${e.message}` });
      });
    });
  }

  /** Starts QEMU and connects every port's socket (the guest opens its side later). */
  static async start(opts: VmOptions): Promise<Vm> {
    const vm = new Vm(opts);
    const deadline = Date.now() + 15_000;
    try {
      for (let p = 1; p <= (opts.ports ?? 0); p++) {
        const sock = await connectWhenReady(join(vm.workDir, `port${p}.sock`), deadline, () => vm.dead);
        vm.channels.set(p, new LineChannel(p, sock));
      }
    } catch (e) {
      const exit = vm.dead ? await vm.exited : undefined;
      await vm.stop();
      throw new Error(`${(e as Error).message}${exit ? `\nqemu stderr:\n${exit.stderr}` : ''}`);
    }
    return vm;
  }

  get alive(): boolean {
    return !this.dead;
  }

  channel(port: number): LineChannel {
    const ch = this.channels.get(port);
    if (!ch) throw new Error(`the VM has no port ${port}`);
    return ch;
  }

  /** Kills QEMU (the guest has nothing to flush: everything lives in the initramfs). */
  async stop(): Promise<VmExit> {
    for (const ch of this.channels.values()) ch.close();
    if (!this.dead) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.workDir, { recursive: true, force: true });
    return this.exited;
  }
}
