// Unit tests of the kernel build and VM helpers that need no kernel: the config check,
// the initramfs writer, splat extraction and the selftest TAP parser.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkConfig, parseConfig } from '../kernel/check-config.ts';
import { buildInitramfs } from '../qemu/initramfs.ts';
import { extractSplats, KernelLog } from '../qemu/kernel-log.ts';
import { parseSelftestOutput } from '../qemu/selftests.ts';

describe('check-config', () => {
  it('reports options Kconfig dropped or set differently, and honours "is not set"', () => {
    const fragment = 'CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D="x"\n# a comment\n';
    const config = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_D="x"\n';
    expect(checkConfig(fragment, config)).toEqual([
      { option: 'CONFIG_B', want: 'y', got: 'n' },
      { option: 'CONFIG_C', want: 'n', got: 'y' },
    ]);
    expect(checkConfig('CONFIG_E=y\n', '')).toEqual([{ option: 'CONFIG_E', want: 'y', got: 'absent' }]);
    expect(checkConfig('# CONFIG_F is not set\n', '')).toEqual([]);
    expect(parseConfig('CONFIG_X=m\n').get('CONFIG_X')).toBe('m');
  });
});

describe('initramfs writer', () => {
  it('writes newc records with 4-byte alignment, device numbers and a trailer', () => {
    const cpio = gunzipSync(
      buildInitramfs([
        { kind: 'dir', path: 'dev' },
        { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
        { kind: 'file', path: 'init', data: 'abc', mode: 0o755 },
        { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
      ]),
    ).toString('latin1');
    const records = cpio.split('070701').slice(1);
    expect(records).toHaveLength(5);
    const field = (rec: string, i: number) => Number.parseInt(rec.slice(i * 8, i * 8 + 8), 16);
    // mode is field 1, filesize 6, rdevmajor 9, rdevminor 10, namesize 11
    expect(field(records[0], 1)).toBe(0o040755);
    expect(field(records[1], 1)).toBe(0o020600);
    expect([field(records[1], 9), field(records[1], 10)]).toEqual([5, 1]);
    expect(field(records[2], 1)).toBe(0o100755);
    expect(field(records[2], 6)).toBe(3);
    expect(field(records[3], 1)).toBe(0o120777);
    expect(records[4]).toContain('TRAILER!!!');
    expect(cpio.length % 4).toBe(0);
  });
});

describe('kernel log', () => {
  it('extracts WARN and lockdep splats up to their end markers and skips sync markers', () => {
    const lines = [
      '[    1.0] ok line',
      '[    2.0] ------------[ cut here ]------------',
      '[    2.0] WARNING: CPU: 1 PID: 77 at drivers/iommu/iommufd/pages.c:123 foo+0x1/0x2',
      '[    2.0] vfio-mc-sync 3 9',
      '[    2.0] ---[ end trace 0000000000000000 ]---',
      '[    3.0] unrelated',
      '[    4.0] WARNING: possible circular locking dependency detected',
      '[    4.0] 7.3.4 #1 Not tainted',
    ];
    expect(extractSplats(lines)).toBe([lines[1], lines[2], lines[4], lines[6], lines[7]].join('\n'));
    expect(extractSplats(['[ 1.0] all quiet', '[ 1.1] vfio-mc-sync 1 1'])).toBeUndefined();
  });

  it('joins partial console chunks, drops CRs and wakes waiters', async () => {
    const log = new KernelLog();
    const seen = log.waitFor(/vfio-mc-sync 2 5/, 0, 1000);
    log.push('[ 1.0] first\r\n[ 1.1] vfio-mc-');
    log.push('sync 2 5\r\n');
    expect(await seen).toBe(1);
    expect(log.lines).toEqual(['[ 1.0] first', '[ 1.1] vfio-mc-sync 2 5']);
    expect(await log.waitFor(/never/, 0, 10)).toBeUndefined();
  });
});

describe('selftest TAP parser', () => {
  it('counts ok, not ok and SKIP per binary between the runner markers', () => {
    const results = parseSelftestOutput([
      'vfio-mc-selftest-begin iommufd',
      'TAP version 13',
      'ok 1 iommufd.simple_close',
      'not ok 2 iommufd_ioas.mock_domain.dmabuf_simple',
      'ok 3 iommufd_viommu.no_viommu.x # SKIP Skipping test for variant no_viommu',
      '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0',
      'vfio-mc-selftest-end iommufd rc=1',
      'ok 9 outside.any.binary',
    ]);
    expect(results).toEqual([
      {
        name: 'iommufd',
        exitCode: 1,
        passed: ['iommufd.simple_close'],
        failed: ['iommufd_ioas.mock_domain.dmabuf_simple'],
        skipped: ['iommufd_viommu.no_viommu.x'],
        skipReasons: { 'iommufd_viommu.no_viommu.x': 'Skipping test for variant no_viommu' },
        totals: '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0',
      },
    ]);
  });
});

describe('finding tests and patched kernels', () => {
  it('a finding test is an expected failure without its patch and must pass with it', async () => {
    const { expectedFailure, FINDING_TESTS } = await import('../qemu/selftest-expectations.ts');
    const [name, f] = Object.entries(FINDING_TESTS)[0];
    expect(expectedFailure(name, [])).toContain(f.patch);
    expect(expectedFailure(name, [f.patch])).toBeUndefined();
    expect(expectedFailure('iommufd_ioas.no_domain.dmabuf_simple', [f.patch])).toContain('dmabuf');
    expect(expectedFailure('iommufd_ioas.no_domain.map', [])).toBeUndefined();
  });

  it('every finding patch exists, and the patch set hash follows order and content', async () => {
    const { existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { FINDING_TESTS } = await import('../qemu/selftest-expectations.ts');
    const { patchSet } = await import('../kernel/patched.ts');
    const dir = join(import.meta.dirname, '..', 'kernel', 'patches');
    const files = [...new Set(Object.values(FINDING_TESTS).map((f) => join(dir, f.patch)))];
    for (const f of files) expect(existsSync(f), f).toBe(true);
    expect(patchSet(files).hash).toMatch(/^[0-9a-f]{12}$/);
    expect(patchSet(files).hash).not.toBe(patchSet([...files].reverse()).hash);
    expect(() => patchSet([join(dir, 'missing.patch')])).toThrow(/missing.patch does not exist/);
    expect(() => patchSet([])).toThrow(/at least one patch/);
  });

  it('the patches of a booted kernel come from the stamp next to its bzImage', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { kernelPatches } = await import('../qemu/run-selftests.ts');
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-stamp-'));
    mkdirSync(join(dir, 'arch', 'x86', 'boot'), { recursive: true });
    const bz = join(dir, 'arch', 'x86', 'boot', 'bzImage');
    expect(kernelPatches(bz)).toEqual([]);
    writeFileSync(
      join(dir, 'vfio-mc-build.json'),
      JSON.stringify({ patches: [{ file: '/x/0001-a.patch' }] }),
    );
    expect(kernelPatches(bz)).toEqual(['0001-a.patch']);
  });
});
