// `vfio-mc export kselftest`: the committed finding tests are what the exporter writes today,
// the C follows the model (a fixed and a broken design give different asserts), and what
// cannot become a C test is refused with one line.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adapterFor } from '../../conformance/conform.ts';
import { expectedResult, formatKselftest, recordPath } from '../../conformance/export-kselftest.ts';
import { exportArgs, exportedTests } from '../../conformance/kselftest/export-all.ts';
import { generatePaths } from '../../conformance/paths.ts';
import { projectTestDir } from '../../conformance/qemu/selftests.ts';
import { main } from '../../cli/main.ts';
import { findModel } from '../../explorer/registry.ts';

const quiet = async (args: string[]) => {
  const err = process.stderr.write;
  let text = '';
  process.stderr.write = ((s: string) => {
    text += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), text };
  } finally {
    process.stderr.write = err;
  }
};

async function exported(modelId: string, variantName: string, pathId: string) {
  const model = await findModel(modelId);
  const variant = model.variant(variantName);
  const path = generatePaths(variant).paths.find((p) => p.id === pathId);
  if (!path) throw new Error(`no path ${pathId}`);
  const exp = await recordPath(variant, adapterFor(modelId, variantName), path);
  return formatKselftest(exp, {
    command: 'test',
    model: modelId,
    variant: variantName,
    pathId,
    fixture: 'f',
    test: 't',
  });
}

describe('the committed finding tests', () => {
  it.each(exportedTests().map((t) => [t.file, t]))('%s is what the exporter writes', async (file, t) => {
    const out = join(mkdtempSync(join(tmpdir(), 'vfio-mc-export-')), file);
    expect((await quiet(exportArgs(t, out))).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(projectTestDir, file), 'utf8'));
  });
});

describe('the C follows the model', () => {
  it('F1: the fixed design asserts success and the new charge, 7.3.4 as released asserts its EINVAL', async () => {
    const fixed = await exported(
      'exec-handoff',
      'iommufd-change-process-noholder-mm-fixed',
      'exec-handoff/iommufd-change-process-noholder-mm-fixed/p002',
    );
    expect(fixed).toContain(
      'ASSERT_EQ(0, vmc_change_process(0, self->fd));\n\tASSERT_EQ(8, vmc_vm_pin_kb(0));',
    );
    expect(fixed).toContain('ASSERT_EQ(0, vmc_exec(0, 2, self->fd, self->memfd));');
    const broken = await exported(
      'exec-handoff',
      'iommufd-change-process-noholder-mm',
      'exec-handoff/iommufd-change-process-noholder-mm/p002',
    );
    expect(broken).toContain('VMC_ASSERT_ERRNO(EINVAL, vmc_change_process(0, self->fd));');
  });

  it('the fixture is the adapter’s, with outputs in variables and arguments derived from them', async () => {
    const c = await exported('ioas', 'change-process', 'ioas/change-process/p001');
    expect(c).toContain('ASSERT_EQ(0, vmc_ioas_alloc(0, self->fd, &self->ioas1));');
    expect(c).toContain('ASSERT_EQ(0, vmc_fork(0, 1));');
    expect(c).toMatch(/FIXTURE\(f\)\n\{\n(\tuint64_t \w+;\n)+\};/);
  });
});

describe('what cannot be exported is refused with one line, exit 2', () => {
  it('a shim op without a C counterpart (the type1 container)', async () => {
    const r = await quiet(['export', 'kselftest', 'container', '--path', 'container/current/p001']);
    expect(r.code).toBe(2);
    expect(r.text).toMatch(/^vfio-mc: error: shim op '\w+' has no C counterpart in vfio_mc_actors.h/);
  });

  it('an unknown path id, and a path file of another model', async () => {
    const r = await quiet(['export', 'kselftest', 'ioas', '--variant', 'change-process', '--path', 'nope']);
    expect(r.code).toBe(2);
    expect(r.text).toMatch(/^vfio-mc: error: no path 'nope' \(ids: /);
    const other = await quiet([
      'export',
      'kselftest',
      'exec-handoff',
      '--variant',
      'iommufd-change-process',
      '--paths',
      'test/conformance/traces/u2-none-change-then-unmap.paths.json',
      '--path',
      'ioas/change-process-none/trace',
    ]);
    expect(other.code).toBe(2);
    expect(other.text).toContain('not a vfio-mc path file of model exec-handoff');
  });

  it('a call the model says blocks, or whose result the path leaves open', () => {
    const e = { type: 'VmmUnmapDma' };
    expect(() => expectedResult(new Map([['blocked', 1]]), undefined, e)).toThrow(/blocks for good/);
    expect(() =>
      expectedResult(
        new Map([
          ['0', 1],
          ['EBUSY', 1],
        ]),
        undefined,
        e,
      ),
    ).toThrow(/allows 0 \| EBUSY here and the path names none/);
    expect(
      expectedResult(
        new Map([
          ['0', 1],
          ['EBUSY', 1],
        ]),
        'EBUSY',
        e,
      ),
    ).toBe('EBUSY');
  });
});
