// The layout check's pure parts (no kernel build needed): parsing the shim's --layout output,
// the C program made from it, and the comparison. tests/layout.kernel.test.ts runs them
// against the cached build's headers.
import { describe, expect, it } from 'vitest';
import { compareLayouts, layoutProgram, parseLayout, shimIncludes } from '../shim/layout.ts';

const SHIM = [
  'ioctl IOMMU_TEST_CMD 0x00003ba0',
  'struct iommu_test_cmd size=72',
  'field iommu_test_cmd.op off=4 size=4',
  'field iommu_test_cmd.mock_domain.out_hwpt_id off=20 size=4',
  'field iommu_test_cmd.op off=4 size=4',
].join('\n');

describe('parseLayout', () => {
  it('keeps one entry per key (the shim prints a shared struct once per op)', () => {
    expect([...parseLayout(SHIM, 'shim')]).toEqual([
      ['ioctl IOMMU_TEST_CMD', '0x00003ba0'],
      ['struct iommu_test_cmd', 'size=72'],
      ['field iommu_test_cmd.op', 'off=4 size=4'],
      ['field iommu_test_cmd.mock_domain.out_hwpt_id', 'off=20 size=4'],
    ]);
  });

  it('refuses a key with two values and a line it does not know', () => {
    expect(() => parseLayout(`${SHIM}\nfield iommu_test_cmd.op off=8 size=4`, 'shim')).toThrow(
      'shim: field iommu_test_cmd.op is both off=4 size=4 and off=8 size=4',
    );
    expect(() => parseLayout('field x.y off=1', 'shim')).toThrow(/malformed layout line "field x.y off=1"/);
    // names go into generated C: nothing but identifiers gets through
    expect(() => parseLayout('ioctl FOO);system("x") 0x1', 'shim')).toThrow(/malformed layout line/);
  });
});

describe('layoutProgram', () => {
  it('prints each entry in the shim format, with offsetof/sizeof of nested members', () => {
    const c = layoutProgram(parseLayout(SHIM, 'shim'), ['<linux/iommufd.h>', '"iommufd_test.h"']);
    expect(c).toContain('#include <linux/iommufd.h>\n#include "iommufd_test.h"\n');
    expect(c).toContain('printf("ioctl IOMMU_TEST_CMD 0x%08lx\\n", (unsigned long)(IOMMU_TEST_CMD));');
    expect(c).toContain(
      'printf("struct iommu_test_cmd size=%lu\\n", (unsigned long)sizeof(struct iommu_test_cmd));',
    );
    expect(c).toContain(
      'printf("field iommu_test_cmd.mock_domain.out_hwpt_id off=%lu size=%lu\\n", ' +
        '(unsigned long)__builtin_offsetof(struct iommu_test_cmd, mock_domain.out_hwpt_id), ' +
        '(unsigned long)sizeof(((struct iommu_test_cmd *)0)->mock_domain.out_hwpt_id));',
    );
  });
});

describe('compareLayouts', () => {
  it('is empty when both agree and names each difference otherwise', () => {
    const shim = parseLayout(SHIM, 'shim');
    expect(compareLayouts(shim, new Map(shim))).toEqual([]);
    const headers = new Map(shim);
    headers.set('field iommu_test_cmd.op', 'off=8 size=4');
    headers.delete('struct iommu_test_cmd');
    headers.set('ioctl IOMMU_DESTROY', '0x00003b80');
    expect(compareLayouts(shim, headers)).toEqual([
      'struct iommu_test_cmd: shim size=72, headers missing',
      'field iommu_test_cmd.op: shim off=4 size=4, headers off=8 size=4',
      'ioctl IOMMU_DESTROY: shim missing',
    ]);
  });
});

describe('shimIncludes', () => {
  it('takes the uapi and quoted includes, not libc headers or the generated errnames.h', () => {
    const src = [
      '#include <stdio.h>',
      '#include <sys/ioctl.h>',
      '#include <linux/vfio.h>',
      '#include "iommufd_test.h"',
      '#include "errnames.h"',
    ].join('\n');
    expect(shimIncludes(src)).toEqual(['<linux/vfio.h>', '"iommufd_test.h"']);
  });
});
