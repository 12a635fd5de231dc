import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../explorer/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-cli-'));

async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    stdout += String(s);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('exit codes and output', () => {
  it('0 when every property holds, with a complete search', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'ordered', '--no-progress');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('complete: every reachable state explored');
    expect(r.stdout).toMatch(/noLostUpdate\s+invariant\s+holds/);
  });

  it('1 on a violation, with swim lanes and the changed fields', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'abba');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('deadlock after 2 steps (shortest)');
    expect(r.stdout).toMatch(/ 1 \| ThreadATakeFirst\s+\|\s+\| locks\.l1: null→threadA/);
  });

  it('says when a bound cut the search', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'ordered', '--depth', '3');
    expect(r.stdout).toContain('INCOMPLETE: cut off by the depth bound (3)');
    expect(r.stdout).toContain('within the bounds (search cut off by --depth)');
  });

  it('--json prints exactly one object of the documented shape', async () => {
    const r = await run('explore', 'example-locks', '--variant', 'unlocked-count', '--json');
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
    await run('explore', 'example-locks', '--variant', 'abba', '--mermaid', file);
    const md = readFileSync(file, 'utf8');
    expect(md).toContain('```mermaid\nsequenceDiagram\n  participant threadA\n  participant threadB');
    expect(md).toContain('Note over threadB: ThreadBTakeFirst');
  });

  it('a path to a model file works like a registered id', async () => {
    const r = await run('explore', 'machines/example-locks.ts', '--variant', 'abba', '--json');
    expect(JSON.parse(r.stdout).violations[0].kind).toBe('deadlock');
  });

  it('list shows models, variants and properties', async () => {
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--variant abba: noLostUpdate, locksReleasedAtExit, deadlock');
  });

  it('replay re-runs a trace from explore --json', async () => {
    const json = (await run('explore', 'example-locks', '--variant', 'unlocked-count', '--json')).stdout;
    const file = join(dir, 'trace.json');
    writeFileSync(file, json);
    const r = await run('replay', 'example-locks', file, '--variant', 'unlocked-count');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('violated at the end: noLostUpdate');
  });
});

describe('verdicts', () => {
  it('compares every variant with its expectation; exit 0 when all are as expected', async () => {
    const r = await run('verdicts', '--models', 'example-locks', '--no-progress');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/example-locks\s+abba\s+21\s+yes\s+\S+\s+as expected\s+deadlock/);
    expect(r.stdout).toContain('3 variants: 3 as expected, 0 unexpected');
  });
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
    );
    expect(r.code).toBe(1);
    const cmd = r.stdout.match(/reproduce: vfio-mc (walk .*)/)?.[1] ?? '';
    expect(cmd).toMatch(/--depth 30 --replay 3:[\d:]+$/);
    const again = await run(...cmd.split(' '));
    expect(again.code).toBe(1);
    const lanes = (out: string) => out.split('\n').filter((l) => /^ \d \|/.test(l));
    expect(lanes(again.stdout)).toEqual(lanes(r.stdout));
  });

  it('exit 0 when no walk finds a violation', async () => {
    const r = await run('walk', 'example-locks', '--runs', '20', '--depth', '15', '--seed', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('20 random walks of up to 15 steps, no violation (seed 1)');
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
