// Unit tests of the target that need no VM: refusals and the line protocol.
import { describe, expect, it } from 'vitest';
import { encodeRequest, parseShimLine } from '../target/protocol.ts';
import { hostFacts, localPrerequisitesMissing, openTarget } from '../target.ts';

describe('local target prerequisites', () => {
  it('names root and /dev/iommu when they are missing', () => {
    expect(localPrerequisitesMissing({ uid: 1000, hasDevIommu: false })).toEqual([
      'root (running as uid 1000)',
      '/dev/iommu (a host kernel with CONFIG_IOMMUFD)',
    ]);
    expect(localPrerequisitesMissing({ uid: 0, hasDevIommu: false })).toEqual([
      '/dev/iommu (a host kernel with CONFIG_IOMMUFD)',
    ]);
    expect(localPrerequisitesMissing({ uid: 1000, hasDevIommu: true })).toEqual([
      'root (running as uid 1000)',
    ]);
    expect(localPrerequisitesMissing({ uid: 0, hasDevIommu: true })).toEqual([]);
  });

  it('openTarget({ kind: "local" }) refuses on this host with a message naming what is missing', async () => {
    const missing = localPrerequisitesMissing(hostFacts());
    // This machine (and CI) has no /dev/iommu; on a host that has both, there is nothing to refuse.
    expect(missing.length, 'this test expects a host without /dev/iommu or without root').toBeGreaterThan(0);
    await expect(openTarget({ kind: 'local' })).rejects.toThrow(
      new RegExp(`the local target needs ${missing.map((m) => m.replace(/[()/]/g, '\\$&')).join(' and ')}`),
    );
  });
});

describe('qemu target input checks', () => {
  it('refuses a kernel image that does not exist', async () => {
    await expect(openTarget({ kind: 'qemu', kernel: '/nonexistent/bzImage' })).rejects.toThrow(
      'kernel image /nonexistent/bzImage does not exist',
    );
  });

  it('refuses an allow-list entry that is neither a /dev path, mdev:<uuid> nor pci:<bdf>', async () => {
    await expect(openTarget({ kind: 'qemu', allow: ['/etc/passwd'] })).rejects.toThrow(/allow-list entry/);
    // a pci: entry also goes into /init's bind line, so only a full DDDD:BB:DD.F is taken
    for (const bad of ['pci:00:10.0', 'pci:0000:00:10.0; reboot -f', 'pci:../../x']) {
      await expect(openTarget({ kind: 'qemu', allow: [bad] })).rejects.toThrow(/allow-list entry/);
    }
    await expect(openTarget({ kind: 'qemu', allow: ["/dev/x' ; reboot -f '"] })).rejects.toThrow(
      /allow-list entry/,
    );
  });

  it('refuses an unknown kind', async () => {
    await expect(openTarget({ kind: 'kvm' } as never)).rejects.toThrow(/unknown target kind "kvm"/);
  });
});

describe('shim line protocol', () => {
  it('encodes numbers, bigints, names, lists and escapes separators', () => {
    expect(
      encodeRequest(7, 'ioas_unmap', {
        fd: 3,
        iova: 0n,
        length: 0xffff_ffff_ffff_ffffn,
        flags: 'A|B',
        skip: undefined,
      }),
    ).toBe('7 ioas_unmap fd=3 iova=0 length=18446744073709551615 flags=A|B');
    expect(encodeRequest(1, 'exec', { keep: [3, 5] })).toBe('1 exec keep=3,5');
    expect(encodeRequest(2, 'kmsg', { text: 'a b=c%' })).toBe('2 kmsg text=a%20b%3Dc%25');
    expect(() => encodeRequest(1, 'bad op', {})).toThrow(/bad op name/);
    expect(() => encodeRequest(1, 'x', { 'Bad-Key': 1 })).toThrow(/bad argument name/);
    expect(() => encodeRequest(1, 'x', { n: 1.5 })).toThrow(/not an integer/);
  });

  it('parses replies, refusals and hellos', () => {
    expect(parseShimLine('4 ret=0 errno=0 iova=0x1000000 big=0xffffffffffffffff')).toEqual({
      kind: 'reply',
      seq: 4,
      ret: 0,
      errno: '0',
      out: { iova: 0x1000000, big: 0xffff_ffff_ffff_ffffn },
    });
    expect(parseShimLine('5 ret=-17 errno=EEXIST')).toMatchObject({
      kind: 'reply',
      ret: -17,
      errno: 'EEXIST',
    });
    expect(parseShimLine('6 proto_error=path%20/x%20is%20not%20in%20the%20allow-list')).toEqual({
      kind: 'proto_error',
      seq: 6,
      message: 'path /x is not in the allow-list',
    });
    expect(parseShimLine('0 hello pid=42 port=3 fds=4,5 forked=1')).toMatchObject({
      kind: 'hello',
      pid: 42,
      port: 3,
      fds: [4, 5],
    });
    expect(parseShimLine('0 hello pid=1 port=1 fds=-')).toMatchObject({ fds: [] });
    expect(parseShimLine('garbage')).toBeUndefined();
  });
});
