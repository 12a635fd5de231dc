/**
 * The benchmark's Promela twin (dma-regions.ts in Spin 6.5's language), and
 * running it. Each region's four VMM transitions and two driver transitions
 * are `d_step`s in two always-looping processes, so a Spin state is the
 * regions and nothing else (both program counters stay at the loop's head):
 * the same (3 + 2p)^k states as the model. The invariant is asserted at the
 * end of every step, as the explorer checks it on every state.
 *
 * Compiled as Spin's manual says for a plain exhaustive safety search
 * without partial-order reduction: `spin -a`, then `gcc -O2 -DNOREDUCE
 * -DSAFETY`, run with a hash table sized for the state count (-w) and a
 * depth limit that a depth-first search of this model never reaches (-m).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function promela(regions: number, pins: number): string {
  const inv = (i: number) => `assert(r[${i}].vaddrValid || r[${i}].pins == 0 || r[${i}].mapped)`;
  const vmm: string[] = [];
  const mdev: string[] = [];
  for (let i = 0; i < regions; i++) {
    const r = `r[${i}]`;
    vmm.push(
      `  :: d_step { !${r}.mapped -> ${r}.mapped = 1; ${r}.vaddrValid = 1; ${r}.pins = 0; ${inv(i)} }`,
      `  :: d_step { ${r}.mapped && ${r}.pins == 0 -> ${r}.mapped = 0; ${r}.vaddrValid = 0; ${inv(i)} }`,
      `  :: d_step { ${r}.mapped && ${r}.vaddrValid -> ${r}.vaddrValid = 0; ${inv(i)} }`,
      `  :: d_step { ${r}.mapped && !${r}.vaddrValid -> ${r}.vaddrValid = 1; ${inv(i)} }`,
    );
    mdev.push(
      `  :: d_step { ${r}.mapped && ${r}.vaddrValid && ${r}.pins < ${pins} -> ${r}.pins++; ${inv(i)} }`,
      `  :: d_step { ${r}.pins > 0 -> ${r}.pins--; ${inv(i)} }`,
    );
  }
  return [
    `/* vfio-mc benchmark twin: ${regions} DMA regions, up to ${pins} pins each */`,
    'typedef Region { bool mapped; bool vaddrValid; byte pins }',
    `Region r[${regions}];`,
    'active proctype vmm() {',
    '  do',
    ...vmm,
    '  od',
    '}',
    'active proctype mdev() {',
    '  do',
    ...mdev,
    '  od',
    '}',
    '',
  ].join('\n');
}

/** Build the verifier for a model; returns the command that runs it (with its arguments). */
export function buildPan(regions: number, pins: number, states: number): { dir: string; argv: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-spin-'));
  writeFileSync(join(dir, 'model.pml'), promela(regions, pins));
  execFileSync('spin', ['-a', 'model.pml'], { cwd: dir, stdio: 'pipe' });
  execFileSync('gcc', ['-O2', '-DNOREDUCE', '-DSAFETY', '-DMEMLIM=16384', '-o', 'pan', 'pan.c'], {
    cwd: dir,
    stdio: 'pipe',
  });
  const w = Math.max(20, Math.ceil(Math.log2(states * 2)));
  return { dir, argv: [join(dir, 'pan'), `-w${w}`, `-m${states + 1000}`] };
}

/** What pan printed: states stored and transitions. */
export function parsePan(out: string): { states: number; transitions: number; errors: number } {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? Number.NaN);
  return {
    states: num(/(\d+) states, stored/),
    transitions: num(/(\d+) transitions \(= stored\+matched\)/),
    errors: num(/errors: (\d+)/),
  };
}

/** Spin's version, or why it is not there. */
export function spinVersion(): string | undefined {
  const r = spawnSync('spin', ['-V'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
