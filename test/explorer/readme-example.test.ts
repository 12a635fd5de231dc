/** The example in explorer/README.md is real code: run it as a user would, from a file of its own. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import { loadModelFile } from '../../explorer/registry.ts';

const readme = readFileSync(join(import.meta.dirname, '../../explorer/README.md'), 'utf8');
const code = readme.match(/```ts\n([\s\S]*?)```/)?.[1] ?? '';

describe('the README example model', () => {
  it('is the starting model `vfio-mc init` writes', () => {
    // (Prettier lays the code out for 80 columns in Markdown, 110 in .ts files: compare the tokens.)
    const tokens = (s: string) =>
      s
        .replace(/\s+/g, ' ')
        .replace(/\s*([(){}|;,:=])\s*/g, '$1')
        .replace(/=\|/g, '=');
    const file = readFileSync(join(import.meta.dirname, '../../cli/init/model.ts'), 'utf8');
    expect(tokens(code)).toBe(tokens(file));
  });

  it('loads from a file importing the package by name, and finds seed 002 in two steps', async () => {
    const dir = join(import.meta.dirname, '../../out');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'readme-example.ts');
    writeFileSync(file, code);
    const model = await loadModelFile(file);
    const bad = await explore(model.variant('notify-if-pinned'));
    expect(
      bad.violations.map((v) => [v.property, v.trace.map((s) => `${s.event.type}→${s.result}`)]),
    ).toEqual([['driverViewConsistent', ['VmmMapDma→0', 'VmmUnmapDma→0']]]);
    const good = await explore(model.variant('notify-always'));
    expect(good.complete).toBe(true);
    expect(good.violations).toEqual([]);
  });
});
