/**
 * Every registered variant has a row in its spec page's variant table and in
 * its verdict table, and what the verdict rows say agrees with the variant's
 * `expect` (violated set, pinned state count): `npm start` compares the
 * explorer with `expect`, this test compares `expect` with the page, so the
 * page cannot drift from what the explorer finds.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Model } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import { propertiesOf, readSpecTables, tableProblems } from './spec-tables.ts';

const SPEC = join(import.meta.dirname, '..', '..', 'spec');
const models = await registeredModels();

describe('spec pages: variant and verdict tables agree with the registered variants', () => {
  it.each(models.map((m) => [m.id, m] as const))('%s', (id, m) => {
    const page = join(SPEC, `${id}.md`);
    expect(existsSync(page), `spec/${id}.md`).toBe(true);
    expect(tableProblems(m, readSpecTables(page, propertiesOf(m)))).toEqual([]);
  });
});

describe('the check itself, on pages written to fail it', () => {
  const locks = models.find((m) => m.id === 'example-locks') as Model;
  const barMmap = models.find((m) => m.id === 'bar-mmap') as Model;
  const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-spec-'));
  const check = (m: Model, page: string) => {
    const f = join(dir, 'page.md');
    writeFileSync(f, page);
    return tableProblems(m, readSpecTables(f, propertiesOf(m)));
  };
  const head = '| variant | design | what the explorer finds |\n|---|---|---|\n';
  const ordered = '| `ordered` | l1 then l2 | every property holds |\n';
  const abba = '| `abba` | l2 then l1 | **deadlock** after 2 steps |\n';
  const unlocked = '| `unlocked-count` | no locks | `noLostUpdate` violated |\n';

  it('passes the page as it should be', () => {
    expect(check(locks, head + ordered + abba + unlocked)).toEqual([]);
  });
  it('fails a missing row', () => {
    expect(check(locks, head + ordered + unlocked)).toEqual([
      'abba: no row in the variant table',
      'abba: no row in the verdict table',
    ]);
  });
  it('fails a verdict the variant does not expect, and a row for no variant', () => {
    expect(
      check(
        locks,
        head + ordered + abba.replace('deadlock', 'noLostUpdate') + unlocked + '| `abab` | x | y |\n',
      ),
    ).toEqual([
      "a row names 'abab', which is no variant: | `abab` | x | y |",
      'abba: the table says violated [noLostUpdate], expect says [deadlock]',
    ]);
  });
  it('fails a variant table that misses a row while the verdict table has it', () => {
    const variants =
      '## Variants\n\n| variant | what |\n|---|---|\n| `ordered` | a |\n| `abba` | b |\n\n## Verdicts\n\n';
    expect(check(locks, variants + head + ordered + abba + unlocked)).toEqual([
      'unlocked-count: no row in the variant table',
    ]);
  });
  it('fails a property-per-row table that says a violated property holds, and a pinned count that moved', () => {
    const names = barMmap.variantNames.map((v) => `| \`${v}\` | x |`).join('\n');
    const verdicts = barMmap.variantNames
      .map((v) => {
        const e = barMmap.variant(v).expect;
        const states = v === 'current' ? 1 : e?.states;
        const bad = e?.violated?.length
          ? `| \`${v}\` | ${e.violated.join(', ')} | violated | ${states} |\n`
          : '';
        return `${bad}| \`${v}\` | deadlock | ${v === 'proposed-locked' ? 'holds' : 'see above'} | ${states} |`;
      })
      .join('\n');
    const page = `## Variants\n\n| variant | what |\n|---|---|\n${names}\n\n## Verdicts\n\n| variant | property | verdict | states |\n|---|---|---|---|\n${verdicts}\n`;
    const problems = check(barMmap, page);
    expect(problems).toContain('proposed-locked: the table says deadlock holds, expect says violated');
    expect(problems.filter((p) => p.startsWith('current: the table says 1 states'))).toHaveLength(1);
    expect(problems).toHaveLength(2);
  });
});
