// What the shim was built with, checked against the cached build's own headers: every ioctl
// number and uapi struct member its op table binds (layout.ts compiles the same names with
// -nostdinc against hdr/ and iommufd_test.h); and its op table (`--ops`) against what the
// TypeScript side reads from the source (table.ts, used by the adapters' unit tests) and
// against the README's op list. No VM is needed, only the cached build.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformanceDir } from '../cache.ts';
import { cachedKernel, type KernelBuild } from '../kernel/build.ts';
import { ensureShim, shimSources } from '../shim/build.ts';
import {
  compareLayouts,
  headerLayout,
  type Layout,
  parseLayout,
  shimIncludes,
  verifyShimLayout,
} from '../shim/layout.ts';
import { parseOpsListing, shimOps } from '../shim/table.ts';

let kernel: KernelBuild;
let shim: string;
let built: Layout;
let includes: string[];

/** The table as `vfio-mc-shim --ops` prints it: op name -> the ioctl it makes, or "call". */
function opTable(): Map<string, string> {
  const lines = execFileSync(shim, ['--ops'], { encoding: 'utf8' }).trim().split('\n');
  return new Map(lines.map((l) => l.split(' ', 2) as [string, string]));
}

beforeAll(() => {
  const k = cachedKernel();
  if (!k) throw new Error('no cached kernel build: run npm run kernel:build first');
  kernel = k;
  shim = ensureShim(kernel);
  built = parseLayout(execFileSync(shim, ['--layout'], { encoding: 'utf8' }), shim);
  includes = shimIncludes(readFileSync(shimSources()[0], 'utf8'));
});

describe('shim layout', () => {
  it('matches the headers of the cached build, for every ioctl and uapi member the table binds', () => {
    expect(verifyShimLayout(shim, shimSources()[0], kernel)).toEqual(built);
    const ioctls = new Set([...opTable().values()].filter((v) => v !== 'call'));
    expect([...built.keys()].filter((k) => k.startsWith('ioctl ')).sort()).toEqual(
      [...ioctls].map((c) => `ioctl ${c}`).sort(),
    );
    // the members the ioas adapter and the selftest mock ops rely on are among them
    for (const key of [
      'field iommu_ioas_map.user_va',
      'field iommu_test_cmd.access_pages.out_access_pages_id',
      'field vfio_iommu_type1_dma_unmap.size',
    ])
      expect(built.has(key), key).toBe(true);
  });

  describe('against a header tree with struct iommu_ioas_map changed', () => {
    let mutant: string;

    beforeAll(() => {
      mutant = mkdtempSync(join(tmpdir(), 'vfio-mc-hdr-'));
      cpSync(join(kernel.headers, 'include'), join(mutant, 'include'), { recursive: true });
      const file = join(mutant, 'include', 'linux', 'iommufd.h');
      const text = readFileSync(file, 'utf8');
      const from = 'struct iommu_ioas_map {\n\t__u32 size;\n\t__u32 flags;\n';
      expect(text).toContain(from);
      writeFileSync(file, text.replace(from, `${from}\t__u32 vfio_mc_mutant[2];\n`));
    });

    afterAll(() => rmSync(mutant, { recursive: true, force: true }));

    it('names every moved member and the new size, and nothing else', () => {
      const diffs = compareLayouts(built, headerLayout({ ...kernel, headers: mutant }, built, includes));
      expect(diffs.sort()).toEqual([
        'field iommu_ioas_map.ioas_id: shim off=8 size=4, headers off=16 size=4',
        'field iommu_ioas_map.iova: shim off=32 size=8, headers off=40 size=8',
        'field iommu_ioas_map.length: shim off=24 size=8, headers off=32 size=8',
        'field iommu_ioas_map.user_va: shim off=16 size=8, headers off=24 size=8',
        'struct iommu_ioas_map: shim size=40, headers size=48',
      ]);
    });
  });

  it('fails to compile a member the headers do not have, naming it', () => {
    const extra = new Map(built).set('field iommu_ioas_map.vfio_mc_no_such_member', 'off=0 size=4');
    expect(() => headerLayout(kernel, extra, includes)).toThrow(/vfio_mc_no_such_member/);
  });
});

describe('shim op table', () => {
  it('is what table.ts reads from the source: names, arguments (required or not), outputs', () => {
    const listed = parseOpsListing(execFileSync(shim, ['--ops'], { encoding: 'utf8' }));
    const plain = (ops: typeof listed) =>
      [...ops.values()].map((o) => ({ name: o.name, args: [...o.args], outputs: o.outputs }));
    expect(plain(shimOps())).toEqual(plain(listed));
    expect(listed.get('ioas_map')?.args).toEqual(
      new Map([
        ['fd', true],
        ['ioas', true],
        ['vaddr', true],
        ['length', true],
        ['iova', false],
        ['flags', false],
      ]),
    );
  });

  it('is the op list of conformance/README.md, no more and no less', () => {
    const readme = readFileSync(join(conformanceDir, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('| op '), readme.indexOf('**Allow-list.**'));
    const documented = new Set(
      section
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .flatMap((l) => [...l.split('|')[1].matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1])),
    );
    expect([...documented].sort()).toEqual([...opTable().keys()].sort());
  });
});
