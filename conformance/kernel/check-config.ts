// Checks that every option of the fragment ended up in the kernel's .config with the wanted
// value. Kconfig drops an option whose dependencies are unmet without an error
// (scripts/kconfig/merge_config.sh only warns), so the build runs this before compiling.
//
//   tsx conformance/kernel/check-config.ts [--fragment FILE] [--config .config]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { defaultFragment, kernelBuildDir } from '../cache.ts';
import { isMain, runMain } from '../run.ts';
import { cachedSource } from './source.ts';

export interface ConfigMismatch {
  option: string;
  want: string;
  got: string;
}

/** option -> value; "# CONFIG_X is not set" reads as 'n'. */
export function parseConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) {
      values.set(set[1], set[2]);
      continue;
    }
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) values.set(unset[1], 'n');
  }
  return values;
}

/** Every fragment option whose value in .config differs; an absent option counts as 'n'. */
export function checkConfig(fragmentText: string, configText: string): ConfigMismatch[] {
  const want = parseConfig(fragmentText);
  const got = parseConfig(configText);
  const mismatches: ConfigMismatch[] = [];
  for (const [option, value] of want) {
    const actual = got.get(option) ?? 'n';
    if (actual !== value) mismatches.push({ option, want: value, got: got.has(option) ? actual : 'absent' });
  }
  return mismatches;
}

export function formatMismatches(mismatches: ConfigMismatch[]): string {
  return mismatches.map((m) => `  ${m.option}: wanted ${m.want}, .config has ${m.got}`).join('\n');
}

function main(argv: string[]): number {
  const program = new Command()
    .name('check-config')
    .description('check that every option of the Kconfig fragment is set in a .config')
    .option('--fragment <file>', 'Kconfig fragment', defaultFragment)
    .option('--config <file>', '.config to check (default: the cached build for this fragment)')
    .parse(argv);
  const opts = program.opts<{ fragment: string; config?: string }>();
  if (!existsSync(opts.fragment)) throw new Error(`fragment ${opts.fragment} does not exist`);
  let config = opts.config;
  if (config === undefined) {
    const src = cachedSource();
    if (!src) throw new Error('no kernel source in the cache yet; run npm run kernel:build or pass --config');
    config = join(kernelBuildDir(src.version, opts.fragment), '.config');
  }
  if (!existsSync(config))
    throw new Error(`${config} does not exist; run npm run kernel:build or pass --config`);
  const mismatches = checkConfig(readFileSync(opts.fragment, 'utf8'), readFileSync(config, 'utf8'));
  if (mismatches.length > 0) {
    console.error(`${config}: ${mismatches.length} option(s) of ${opts.fragment} not as wanted:`);
    console.error(formatMismatches(mismatches));
    return 1;
  }
  console.log(`${config}: all ${parseConfig(readFileSync(opts.fragment, 'utf8')).size} fragment options set`);
  return 0;
}

if (isMain(import.meta.url)) runMain('check-config', () => main(process.argv));
