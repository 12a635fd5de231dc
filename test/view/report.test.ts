import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.ts';

const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-html-'));

async function run(...args: string[]) {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return await main(args);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** Every address the markup (outside the inlined scripts) would load something from. */
const external = (html: string) =>
  [...html.replace(/<script>[\s\S]*?<\/script>/g, '').matchAll(/\b(?:src|href)\s*=\s*"([^"#][^"]*)"/g)].map(
    (m) => m[1],
  );

describe('--html', () => {
  it('explore: figures, verdicts, swim lanes with expandable changes, the Mermaid source and its renderer, coverage', async () => {
    const file = join(dir, 'abba.html');
    expect(await run('explore', 'example-locks', '--variant', 'abba', '--no-trails', '--html', file)).toBe(1);
    const html = readFileSync(file, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("default-src 'none'");
    expect(external(html)).toEqual([]);
    expect(html).toContain('vfio-mc explore example-locks --variant abba --no-trails --html');
    expect(html).toContain('21 distinct, 22 transitions, depth 10');
    expect(html).toContain('deadlock after 2 steps (shortest)');
    expect(html).toContain('thread A: mutex_lock(l1)');
    expect(html).toContain('locks.l1: null→threadA');
    expect(html).toContain('in mutex_lock(l2), held by threadB');
    expect(html).toMatch(/<pre class="mermaid">---\ntitle: deadlock in example-locks \/ abba, 2 steps/);
    expect(html).toContain('coverage: all 10 transitions fired');
    expect(html).toContain('mermaid.initialize(');
    expect(html.match(/<\/script>/g)?.length).toBe(2);
  });

  it('verdicts: one row per variant with its verdict, a section per variant; no Mermaid when nothing to draw', async () => {
    const file = join(dir, 'verdicts.html');
    expect(await run('verdicts', '--models', 'example-locks', '--html', file, '--no-progress')).toBe(0);
    const html = readFileSync(file, 'utf8');
    for (const v of ['ordered', 'abba', 'unlocked-count']) {
      expect(html).toContain(`data-row="example-locks/${v}"`);
      expect(html).toContain(`id="run-example-locks-${v}"`);
    }
    expect(html.match(/as expected/g)?.length).toBe(3);
    expect(html).toContain("invariant 'noLostUpdate' violated");
    const quiet = join(dir, 'ordered.html');
    await run('explore', 'example-locks', '--variant', 'ordered', '--html', quiet);
    expect(readFileSync(quiet, 'utf8')).not.toContain('mermaid.initialize(');
  });

  it('a path that cannot be written is an error before the search', async () => {
    expect(await run('explore', 'example-locks', '--html', join(dir, 'no/such/dir/x.html'))).toBe(2);
  });
});
