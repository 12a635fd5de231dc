/**
 * `vfio-mc export kselftest <model> --path ID`: a conformance path as a C test in the style of
 * tools/testing/selftests/iommu (conformance/export-kselftest.ts). The path may come from the
 * variant's own coverage set or from a path file of another variant of the same model (the
 * path of a finding, exported with the expectations of the fixed design).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT } from '../explorer/exit-codes.ts';
import { readJsonFile } from '../explorer/json-file.ts';
import { ModelError } from '../explorer/model.ts';
import { findModel } from '../explorer/registry.ts';
import { replay } from '../explorer/trace.ts';

async function cmdExportKselftest(target: string, o: Record<string, any>): Promise<number> {
  const { generatePaths, PATH_FORMAT } = await import('../conformance/paths.ts');
  const { adapterFor, forReplay } = await import('../conformance/conform.ts');
  const { formatKselftest, recordPath } = await import('../conformance/export-kselftest.ts');
  const model = await findModel(target);
  const adapter = adapterFor(model.id, model.variant(o.variant).name);
  const variant = forReplay(model.variant(o.variant));
  const file = o.paths ? ((await readJsonFile(o.paths)) as any) : generatePaths(variant);
  if (file?.format !== PATH_FORMAT || file.model !== model.id)
    throw new ModelError(`${o.paths}: not a vfio-mc path file of model ${model.id}`);
  const path = file.paths.find((p: { id: string }) => p.id === o.path);
  if (!path)
    throw new ModelError(
      `no path '${o.path}' (ids: ${file.paths.map((p: { id: string }) => p.id).join(', ')})`,
    );
  try {
    replay(
      variant,
      path.steps.map((s: { event: unknown }) => s.event),
    );
  } catch (e) {
    throw new ModelError(
      `path '${o.path}' does not run on ${model.id}/${variant.name}: ${(e as Error).message}`,
    );
  }
  const command = [
    'vfio-mc export kselftest',
    target,
    `--variant ${variant.name}`,
    ...(o.paths ? [`--paths ${o.paths}`] : []),
    `--path ${o.path}`,
    ...(o.name ? [`--name ${o.name}`] : []),
  ].join(' ');
  const text = formatKselftest(await recordPath(variant, adapter, path), {
    command,
    model: model.id,
    variant: variant.name,
    pathId: path.id,
    fixture: `vfio_mc_${model.id.replace(/-/g, '_')}`,
    test: (o.name ?? `${variant.name}_${path.id.split('/').pop()}`).replace(/[^A-Za-z0-9_]/g, '_'),
    about: o.about ? String(o.about).split('\\n') : [],
  });
  if (o.out) writeFileSync(o.out, text);
  else process.stdout.write(text);
  return EXIT.ok;
}

/** Adds `export kselftest` to the program; `done` receives the exit code. */
export function registerExport(program: Command, done: (code: number) => void): void {
  program
    .command('export')
    .description('turn conformance paths into tests for other harnesses')
    .command('kselftest')
    .description('one conformance path as a C test in the style of tools/testing/selftests/iommu')
    .argument('<model>', 'a registered model id, or a path to a model file')
    .requiredOption('--path <id>', 'the path to export')
    .option('--variant <name>', 'the design whose predictions the test asserts')
    .option('--paths <file>', 'a path file of any variant of the model (default: the variant’s coverage set)')
    .option('--name <name>', 'the TEST_F name (default: <variant>_<path number>)')
    .option('--about <text>', 'prose for the file header (\\n separates lines)')
    .option('--out <file>', 'write the C file here instead of stdout')
    .action(async (target, o) => done(await cmdExportKselftest(target, o)));
}
