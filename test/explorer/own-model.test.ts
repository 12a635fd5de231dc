/**
 * A kernel developer's own model, in a directory of their own (outside the
 * repository, no package.json, no node_modules), run through the CLI as a
 * separate process, as a user runs it: with `vfio-mc init`, from a clone
 * (`npm link`), from a packed tarball (`npm pack` + `npm install -g`) and
 * from a git URL. The installs use npm's cache, which `npm ci` filled.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../..');
const BIN = join(REPO, 'bin', 'vfio-mc.js');
const home = mkdtempSync(join(tmpdir(), 'vfio-mc-user-'));
const review = join(home, 'review');

function vfioMc(command: string, args: string[], cwd = home) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, COLUMNS: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The violation the starting model shows, in the thread's words. */
function expectStartingModelOutput(r: ReturnType<typeof vfioMc>) {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(1);
  expect(r.stdout).toContain("invariant 'driverViewConsistent' violated after 2 steps (shortest)");
  expect(r.stdout).toContain('ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0) = 0');
  expect(r.stdout.split('\n').every((l) => l.length <= 100)).toBe(true);
}

/**
 * A model of three files, as models grow: model.ts imports ./machine.ts, which imports
 * ./shared.ts; each imports xstate or vfio-mc. Only the entry file used to resolve them: the
 * others were loaded with require(), and 'xstate' was not found (then a second, uncaught stack).
 */
const three = join(home, 'three');
const THREE_FILES = {
  'shared.ts': `import { assign } from 'xstate';
export const bump = assign({ n: ({ context }: { context: { n: number } }) => context.n + 1 });
export const LIMIT = 3;
`,
  'machine.ts': `import { setup } from 'xstate';
import { bump, LIMIT } from './shared.ts';
export const machine = setup({ types: { context: {} as { n: number }, events: {} as { type: 'Inc' } } }).createMachine({
  id: 'three',
  context: { n: 0 },
  initial: 'run',
  states: { run: { on: { Inc: { guard: ({ context }) => context.n < LIMIT, actions: bump } } } },
});
`,
  'model.ts': `import { defineModel } from 'vfio-mc';
import { machine } from './machine.ts';
export default defineModel({
  id: 'three',
  machine,
  events: () => [{ type: 'Inc' as const }],
  invariants: { belowTwo: (s) => s.context.n < 2 },
});
`,
};

function expectThreeFileModelOutput(r: ReturnType<typeof vfioMc>) {
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('4 distinct states');
  expect(r.stdout).toContain("invariant 'belowTwo' violated after 2 steps (shortest)");
  expect(r.code).toBe(1);
}

beforeAll(() => {
  mkdirSync(three);
  for (const [name, text] of Object.entries(THREE_FILES)) writeFileSync(join(three, name), text);
  const r = vfioMc('node', [BIN, 'init', review]);
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('wrote review/model.ts, review/spec.md, review/README.md');
});

describe('vfio-mc init, then explore, in a directory outside the repository', () => {
  it('the starting model runs as written and shows one violation', () => {
    expect(readdirSync(review).sort()).toEqual(['README.md', 'model.ts', 'spec.md']);
    expectStartingModelOutput(vfioMc('node', [BIN, 'explore', 'review/model.ts']));
  });

  it('its other variant holds', () => {
    const r = vfioMc('node', [BIN, 'explore', 'review/model.ts', '--variant', 'notify-always']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('coverage: all 4 transitions fired');
  });

  it('a model of three files loads; a failure in the third is one error naming its line', () => {
    expectThreeFileModelOutput(vfioMc('node', [BIN, 'explore', 'three/model.ts', '--no-trails']));
    const broken = join(home, 'three-broken');
    mkdirSync(broken);
    for (const [name, text] of Object.entries(THREE_FILES))
      writeFileSync(join(broken, name), name === 'shared.ts' ? `${text}throw new Error('boom');\n` : text);
    const r = vfioMc('node', [BIN, 'explore', 'three-broken/model.ts']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `vfio-mc: error: three-broken/shared.ts:4:7: Error: boom\n  4 | throw new Error('boom');\n            ^\n`,
    );
  });

  it('init refuses to overwrite, and writes nothing then', () => {
    const r = vfioMc('node', [BIN, 'init', review]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^vfio-mc: error: init: .*model\.ts, .*spec\.md, .*README\.md already exists; nothing was written\n$/,
    );
  });

  it('a syntax error names file:line:column and shows the line', () => {
    const dir = join(home, 'syntax');
    mkdirSync(dir);
    writeFileSync(join(dir, 'bad.ts'), "import { defineModel } from 'vfio-mc';\nconst x = { a: 1 b: 2 };\n");
    const r = vfioMc('node', [BIN, 'explore', 'bad.ts'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'vfio-mc: error: bad.ts:2:18: syntax error: Expected "}" but found "b"\n' +
        '  2 | const x = { a: 1 b: 2 };\n' +
        '                       ^\n',
    );
  });

  it('an invariant that throws is named, with the line in the model and the trace', () => {
    const dir = join(home, 'throws');
    cpSync(review, dir, { recursive: true });
    const file = join(dir, 'model.ts');
    const text = spawnSync('sed', ['s/!(s.context.driverSeesMapped/!(s.context.nope.x/', file], {
      encoding: 'utf8',
    }).stdout;
    writeFileSync(file, text);
    const r = vfioMc('node', [BIN, 'explore', 'model.ts'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^vfio-mc: error: invariant 'driverViewConsistent' threw TypeError: Cannot read properties of undefined \(reading 'x'\)\n {2}at .*model\.ts:\d+:\d+\n {2}in the initial state\n$/,
    );
  });
});

describe('command-line hygiene, as a process', () => {
  it('--version', () => {
    const r = vfioMc('node', [BIN, '--version']);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a reader that goes away (list | head -1) ends it quietly', () => {
    const r = vfioMc('bash', ['-c', `node ${BIN} list | head -1; echo "status \${PIPESTATUS[0]}" >&2`]);
    expect(r.stdout.split('\n')).toHaveLength(2);
    expect(r.stderr).toBe('status 0\n');
  });
});

describe('installed as a user would install it', () => {
  const npm = (args: string[], cwd: string, env: Record<string, string> = {}) =>
    execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
      cwd,
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });

  it('from a clone: npm link', () => {
    const prefix = join(home, 'link');
    npm(['link'], REPO, { npm_config_prefix: prefix });
    expectStartingModelOutput(vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'review/model.ts']));
    expectThreeFileModelOutput(
      vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'three/model.ts', '--no-trails']),
    );
  });

  it('from a packed tarball: npm pack, npm install -g', () => {
    const prefix = join(home, 'packed');
    const tgz = npm(['pack', '--pack-destination', home], REPO).trim().split('\n').pop() as string;
    npm(['install', '-g', '--prefix', prefix, join(home, tgz)], home);
    expectStartingModelOutput(vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'review/model.ts']));
    expectThreeFileModelOutput(
      vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'three/model.ts', '--no-trails']),
    );
  });

  it('from a git URL', () => {
    // The working tree as a repository of its own, so the test covers what is being changed.
    const src = join(home, 'git-src');
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], {
      cwd: REPO,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((f) => f !== '');
    for (const f of files) cpSync(join(REPO, f), join(src, f), { recursive: true });
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.email=ci@vfio-mc', '-c', 'user.name=ci', ...args], { cwd: src });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'snapshot');
    const prefix = join(home, 'git');
    npm(['install', '-g', '--prefix', prefix, `git+file://${src}`], home);
    expectStartingModelOutput(vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'review/model.ts']));
    expectThreeFileModelOutput(
      vfioMc(join(prefix, 'bin', 'vfio-mc'), ['explore', 'three/model.ts', '--no-trails']),
    );
  });
});
