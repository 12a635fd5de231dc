// Makes the VM's initramfs at run time: a gzip'd "newc" cpio (the format the kernel's
// init/initramfs.c unpacks) holding busybox-static, the shim and an /init script.
// Written in-process so that no root, fakeroot or cpio binary is needed to create /dev/console.
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export type InitramfsEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer | string; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function record(
  ino: number,
  name: string,
  mode: number,
  data: Buffer,
  rdev: [number, number] = [0, 0],
): Buffer {
  const nameBuf = Buffer.from(`${name}\0`, 'utf8');
  const fields = [
    ino,
    mode,
    0,
    0,
    mode & S_IFDIR ? 2 : 1,
    0,
    data.length,
    0,
    0,
    rdev[0],
    rdev[1],
    nameBuf.length,
    0,
  ];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length)]);
}

/** Serialises entries in order (parents must come before children) and gzips the archive. */
export function buildInitramfs(entries: InitramfsEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        parts.push(record(ino++, name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(record(ino++, name, S_IFREG | (e.mode ?? 0o644), Buffer.from(e.data)));
        break;
      case 'symlink':
        parts.push(record(ino++, name, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8')));
        break;
      case 'chardev':
        parts.push(record(ino++, name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor]));
        break;
    }
  }
  parts.push(record(ino, 'TRAILER!!!', 0, Buffer.alloc(0)));
  return gzipSync(Buffer.concat(parts), { level: 1 });
}

export const BUSYBOX = '/bin/busybox';

/** The static busybox from Debian's busybox-static (a dynamic one would need a libc in the VM). */
export function busyboxBinary(): Buffer {
  if (!existsSync(BUSYBOX))
    throw new Error(`${BUSYBOX} is missing; install busybox-static (conformance/setup-host.sh)`);
  const bin = readFileSync(BUSYBOX);
  // A dynamically linked ELF has a PT_INTERP program header naming the loader.
  if (bin.includes(Buffer.from('/lib64/ld-linux-x86-64.so.2'))) {
    throw new Error(`${BUSYBOX} is dynamically linked; install busybox-static instead of busybox`);
  }
  return bin;
}

/** Mounts and sysctls common to every VM: proc, sysfs, devtmpfs, debugfs (fail_iommufd), hugetlbfs. */
export const INIT_PROLOGUE = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages
# As iommufd_fail_nth.c:setup_fault_injection: let fail-nth fail GFP_KERNEL allocations too
# (mm/failslab.c ignores reclaiming allocations by default) and keep the injections quiet.
echo N > /sys/kernel/debug/failslab/ignore-gfp-wait
echo N > /sys/kernel/debug/fail_page_alloc/ignore-gfp-wait
echo N > /sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem
for f in /sys/kernel/debug/fail*/verbose; do echo 0 > "$f"; done
`;

/** The skeleton every initramfs starts with: directories, busybox and /dev/console for init's stdio. */
export function baseEntries(init: string): InitramfsEntry[] {
  return [
    { kind: 'dir', path: 'bin' },
    { kind: 'dir', path: 'dev' },
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'dir', path: 'proc' },
    { kind: 'dir', path: 'sys' },
    { kind: 'dir', path: 'tmp', mode: 0o1777 },
    { kind: 'dir', path: 'etc' },
    { kind: 'file', path: 'bin/busybox', data: busyboxBinary(), mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: init, mode: 0o755 },
  ];
}
