import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-cli-'));

/** Trails of the counterexamples these tests find go to the temporary directory, not the repository. */
const TRAILS = ['--trail-dir', dir];

afterEach(() => vi.restoreAllMocks());

describe('exit codes and output', () => {
  it('0 when every property holds, with a complete search', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'ordered', '--no-progress');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('complete: every reachable state explored');
    expect(r.stdout).toMatch(/noLostUpdate\s+invariant\s+holds/);
  });

  it('1 on a violation, with swim lanes and the changed fields', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'abba', ...TRAILS);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('deadlock after 2 steps (shortest)');
    expect(r.stdout).toMatch(/ 1 \| thread A: mutex_lock\(l1\)\s+\|\s+\| locks\.l1: null→threadA/);
    expect(r.stdout).toMatch(/blocked at the end:\n {2}threadA {2}in mutex_lock\(l2\), held by threadB/);
  });

  it('says when a bound cut the search', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'ordered', '--depth', '3');
    expect(r.stdout).toContain('complete to depth 3: every state within the depth bound explored');
    expect(r.stdout).toContain('within the bounds (search cut off by --depth)');
  });

  it('--json prints exactly one object of the documented shape', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'unlocked-count', '--json', ...TRAILS);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).toEqual(
      expect.arrayContaining([
        'model',
        'variant',
        'complete',
        'states',
        'transitions',
        'depth',
        'seconds',
        'violations',
      ]),
    );
    expect(j).toMatchObject({
      model: 'example-locks',
      variant: 'unlocked-count',
      complete: true,
      states: 52,
    });
    expect(j.violations[0]).toMatchObject({ property: 'noLostUpdate', kind: 'invariant' });
    expect(Object.keys(j.violations[0].trace[0])).toEqual(
      expect.arrayContaining(['actor', 'event', 'state']),
    );
    expect(r.stderr).toBe('');
  });

  it('--mermaid writes a sequence diagram', async () => {
    const file = join(dir, 'abba.md');
    await run('explore', 'example-locks', '--variant', 'abba', '--mermaid', file, ...TRAILS);
    const md = readFileSync(file, 'utf8');
    expect(md).toContain(
      '```mermaid\n---\ntitle: deadlock in example-locks / abba, 2 steps\n---\nsequenceDiagram\n  participant threadA',
    );
    expect(md).toContain('Note over threadB: thread B: mutex_lock(l2)');
    expect(md).toContain('Note over threadA: waits: in mutex_lock(l2), held by threadB');
  });

  it('a path to a model file works like a registered id', async () => {
    const r = await run('explore', 'machines/example-locks.ts', '--variant', 'abba', '--json', ...TRAILS);
    expect(JSON.parse(r.stdout).violations[0].kind).toBe('deadlock');
  });

  it('list shows models, variant descriptions and property kinds', async () => {
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ {2}invariant +noLostUpdate/);
    expect(r.stdout).toMatch(/ {2}deadlock +deadlock/);
    expect(r.stdout).toMatch(/ {2}abba +thread B takes l2 then l1: lock-order inversion/);
    // The reductions a model declares, for a newcomer to find the options.
    const block = (id: string) => r.stdout.split('\n\n').find((b) => b.startsWith(`${id}: `)) ?? '';
    expect(block('container')).toMatch(/^ {2}reductions: --view --por$/m);
    expect(block('example-locks')).toMatch(/^example-locks: /);
    expect(block('example-locks')).not.toMatch(/reductions:/);
  });

  it('replay re-runs a trace from explore --json', async () => {
    const json = (await run('explore', 'example-locks', '--variant', 'unlocked-count', '--json', ...TRAILS))
      .stdout;
    const file = join(dir, 'trace.json');
    writeFileSync(file, json);
    const r = await run('replay', file);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/confirmed: invariant 'noLostUpdate' violated after step \d/);
  });
});

describe('verdicts', () => {
  it('compares every variant with its expectation; exit 0 when all are as expected', async () => {
    const r = await run('verdicts', '--models', 'example-locks', '--no-progress');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/example-locks\s+abba\s+21\s+yes\s+\S+\s+as expected\s+deadlock/);
    expect(r.stdout.split('\n').every((l) => l.length <= 100)).toBe(true);
    expect(r.stdout).toContain('3 variants: 3 as expected, 0 unexpected');
  });

  it('--view: the views counted, every verdict as expected, a model without a view explored whole', async () => {
    const r = await run('verdicts', '--models', 'exec-handoff,example-locks', '--view', '--no-progress');
    expect(r.code).toBe(0);
    // 573 states unreduced (its pinned count), 210 views: pinned counts are not compared under --view.
    expect(r.stdout).toMatch(/^exec-handoff\s+change-dma-owner-staged\s+210\s+yes\s+\S+\s+as expected/m);
    expect(r.stdout).toMatch(/example-locks\s+abba\s+21\s+yes\s+\S+\s+as expected\s+deadlock/);
    expect(r.stdout).toMatch(/\d+ variants: (\d+) as expected, 0 unexpected/);
  }, 120_000);
});

describe('walk', () => {
  it('prints the shrunk violation, the seed and a command that reproduces it exactly', async () => {
    const r = await run(
      'walk',
      'example-locks',
      '--variant',
      'unlocked-count',
      '--runs',
      '100',
      '--depth',
      '30',
      '--seed',
      '3',
      ...TRAILS,
    );
    expect(r.code).toBe(1);
    const cmd = r.stdout.match(/reproduce: vfio-mc (walk .*)/)?.[1] ?? '';
    expect(cmd).toMatch(/--depth 30 --replay 3:[\d:]+$/);
    const again = await run(...cmd.split(' '), ...TRAILS);
    expect(again.code).toBe(1);
    const lanes = (out: string) => out.split('\n').filter((l) => /^ \d \|/.test(l));
    expect(lanes(again.stdout)).toEqual(lanes(r.stdout));
  });

  it('exit 0 when no walk finds a violation', async () => {
    const r = await run('walk', 'example-locks', '--runs', '20', '--depth', '15', '--seed', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/20 random walks of up to 15 steps, \d+ steps in all, no violation \(seed 1\)/);
  });
});

describe('bad input: one line naming the problem, exit 2, no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'unknown model',
      ['explore', 'no-such-model'],
      /unknown model 'no-such-model' \(registered: .*example-locks/,
    ],
    [
      'unknown variant',
      ['explore', 'example-locks', '--variant', 'nope'],
      /model 'example-locks' has no variant 'nope' \(variants: ordered, abba, unlocked-count\)/,
    ],
    [
      'bound not a positive integer',
      ['explore', 'example-locks', '--depth', '0'],
      /--depth must be a positive integer, got '0'/,
    ],
    [
      'bound not a number',
      ['explore', 'example-locks', '--max-states', '1e3x'],
      /--max-states must be a positive integer/,
    ],
    ['missing file', ['explore', 'machines/nope.ts'], /machines\/nope\.ts: no such file/],
    ['unknown engine', ['explore', 'example-locks', '--engine', 'fast'], /argument 'fast' is invalid/],
    ['walk replay not SEED:PATH', ['walk', 'example-locks', '--replay', 'x'], /--replay must be SEED:PATH/],
    [
      'walk runs not positive',
      ['walk', 'example-locks', '--runs', '-1'],
      /--runs must be a positive integer/,
    ],
  ];
  it.each(cases)('%s', async (_name, args, message) => {
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a module without a model as its default export', async () => {
    const file = join(dir, 'not-a-model.ts');
    writeFileSync(file, 'export default { id: "x" };\n');
    const r = await run('explore', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: the default export is not a model made with defineModel()`);
  });

  it("XState's error whole, at the model's line: a target that does not exist", async () => {
    const file = join(dir, 'bad-target.ts');
    writeFileSync(
      file,
      `import { setup } from 'xstate';
import { defineModel } from '${join(import.meta.dirname, '../../explorer/model.ts')}';
const machine = setup({}).createMachine({
  id: 'm',
  initial: 'a',
  states: {
    a: { on: { Go: { target: 'dnoe' } } },
  },
});
export default defineModel({ id: 'm', machine, events: () => [{ type: 'Go' }], invariants: {} });
`,
    );
    const r = await run('explore', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `vfio-mc: error: ${file}:7:30: Error: Invalid transition definition for state node 'm.a':\n` +
        "  Child state 'dnoe' does not exist on 'm'\n" +
        "  7 |     a: { on: { Go: { target: 'dnoe' } } },\n" +
        `${' '.repeat(35)}^\n`,
    );
  });

  it('a model function that throws a message of several lines: every line', async () => {
    const file = join(dir, 'two-lines.ts');
    writeFileSync(
      file,
      `import { setup } from 'xstate';
import { defineModel } from '${join(import.meta.dirname, '../../explorer/model.ts')}';
const machine = setup({}).createMachine({ id: 'm', initial: 'a', states: { a: { on: { Go: 'b' } }, b: {} } });
export default defineModel({
  id: 'm',
  machine,
  events: () => [{ type: 'Go' }],
  invariants: { twoLines: (s) => { if (s.value === 'b') throw new Error('first line\\nsecond line'); return true; } },
});
`,
    );
    const r = await run('explore', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invariant 'twoLines' threw Error: first line\n  second line\n");
  });

  it('a trace with an event the machine rejects names the step and the event', async () => {
    const file = join(dir, 'bad-trace.json');
    writeFileSync(file, JSON.stringify([{ type: 'ThreadATakeFirst' }, { type: 'ThreadAUnlock' }]));
    const r = await run('replay', 'example-locks', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /model 'example-locks': step 2, event 'ThreadAUnlock' .* is not accepted in that state/,
    );
  });

  it('a trace file that is not JSON', async () => {
    const file = join(dir, 'garbage.json');
    writeFileSync(file, '{nope');
    const r = await run('replay', 'example-locks', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:`);
  });
});

describe('output paths are checked before the search starts', () => {
  it('--mermaid into a missing directory: exit 2 at once, nothing explored', async () => {
    const r = await run('explore', 'container', '--mermaid', '/no/such/dir/x.md', ...TRAILS);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'vfio-mc: error: --mermaid /no/such/dir/x.md: directory /no/such/dir does not exist\n',
    );
  });

  it('--trail-dir that is a file', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    const r = await run('explore', 'example-locks', '--trail-dir', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`is not a directory`);
  });
});

describe('exit codes CI can use', () => {
  it('--require-complete: 4 when a bound cut the search off, 0 when it did not', async () => {
    const cut = await run('explore', 'example-locks', '--depth', '3', '--require-complete', ...TRAILS);
    expect(cut.code).toBe(4);
    const whole = await run('explore', 'example-locks', '--require-complete', ...TRAILS);
    expect(whole.code).toBe(0);
  });

  it('--require-coverage: 3 when a transition never fired and the model does not say why', async () => {
    const file = join(import.meta.dirname, '../fixtures/guard-typo.ts');
    const r = await run('explore', file, '--require-coverage', ...TRAILS);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('coverage: 1 of 2 transitions never fired\n    vmm#Remap[0]');
    const without = await run('explore', file, ...TRAILS);
    expect(without.code).toBe(0);
  });

  it('verdicts --models rejects an unknown id and accepts a model file', async () => {
    const bad = await run('verdicts', '--models', 'nosuch', '--no-progress');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^vfio-mc: error: --models: unknown model 'nosuch' \(registered: /);
    const file = await run('verdicts', '--models', 'test/fixtures/transient.ts', '--no-progress');
    expect(file.stdout).toMatch(/transient\s+default\s+16\s+yes/);
  });

  it('--set on a model without parameters is an error naming the model', async () => {
    const r = await run('explore', 'example-locks', '--set', 'dmas=3');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("model 'example-locks' has no parameter 'dmas' (it has no parameters)");
  });
});

describe('readable at 100 columns', () => {
  const widest = (s: string) => Math.max(...s.split('\n').map((l) => l.length));

  it('the widest report (ioas change-process-mm) fits 100 columns; --wide restores everything', async () => {
    const narrow = await run('explore', 'ioas', '--variant', 'change-process-mm', '--no-progress', ...TRAILS);
    expect(widest(narrow.stdout)).toBeLessThanOrEqual(100);
    const wide = await run(
      'explore',
      'ioas',
      '--variant',
      'change-process-mm',
      '--wide',
      '--no-progress',
      ...TRAILS,
    );
    expect(widest(wide.stdout)).toBeGreaterThan(100);
    expect(wide.stdout).not.toContain('…');
  });

  it('$COLUMNS narrows it further', async () => {
    process.env.COLUMNS = '72';
    try {
      const r = await run('explore', 'example-locks', '--variant', 'abba', ...TRAILS);
      expect(widest(r.stdout)).toBeLessThanOrEqual(72);
    } finally {
      delete process.env.COLUMNS;
    }
  });

  it('list and the verdict table fit', async () => {
    expect(widest((await run('list')).stdout)).toBeLessThanOrEqual(100);
    expect(
      widest((await run('verdicts', '--models', 'example-locks', '--no-progress')).stdout),
    ).toBeLessThanOrEqual(100);
  });

  it('Mermaid: a blocked call is a note, not a return arrow', async () => {
    const file = join(dir, 'vfio-wait.md');
    await run('explore', 'container', '--variant', 'vfio-wait', '--mermaid', file, ...TRAILS);
    const md = readFileSync(file, 'utf8');
    expect(md).toContain('title: deadlock in container / vfio-wait, 4 steps');
    expect(md).toMatch(/Note over vmm: .* blocks/);
    expect(md).not.toMatch(/-->>vmm: blocked/);
  });
});

describe('progress on a terminal', () => {
  it('verdicts shows which search is running, with its states', async () => {
    const tty = process.stderr.isTTY;
    process.stderr.isTTY = true;
    try {
      // one variant of 117,649 states: long enough for the progress line (the container's six
      // variants, 410,000 states with liveness, took a minute and a half of npm test)
      const r = await run('verdicts', '--models', 'explorer/bench/dma-regions.ts');
      expect(r.stderr).toMatch(/\[1\/1\] dma-regions\/default \| [\d,]+ states \| depth \d+/);
    } finally {
      process.stderr.isTTY = tty;
    }
  });
});

describe('walk', () => {
  it('never reports a shrunk trace longer than the first one it found', async () => {
    for (const seed of ['1', '2', '3', '4', '5']) {
      const r = await run(
        'walk',
        'example-locks',
        '--variant',
        'abba',
        '--runs',
        '50',
        '--seed',
        seed,
        '--json',
        ...TRAILS,
      );
      const j = JSON.parse(r.stdout);
      expect(j.violation.trace.length).toBeLessThanOrEqual(j.firstFoundLength);
      expect(j.steps).toBeGreaterThan(0);
    }
  });
});
